import { act, screen } from "@testing-library/react";
import { describe, expect, it, vi } from "vitest";
import type { Station } from "../api/client";
import { fakeStream, renderAs } from "../test/machines";
import { DriftOverview, levelsOf, sinceText } from "./DriftOverview";

function station(name: string, drift_level: Station["drift_level"] = null, drift_since: string | null = null): Station {
  return { id: 1, name, active_model_id: 3, previous_model_id: null, created_at: "2026-12-07T08:00:00Z", drift_level, drift_since };
}

const change = (station: string, level: "ok" | "watch" | "drift") => ({
  type: "station_drift" as const,
  station,
  model_id: 3,
  level,
  previous_level: "ok",
  reason: "",
  shift_auroc: null,
  false_alarm_share: null,
  at: "2026-12-07T10:32:00Z",
});

describe("DriftOverview", () => {
  it("takes each station's level from the list, then from the watch's changes", () => {
    const list = [station("cam1", "ok", "2026-12-07T09:00:00Z"), station("cam2")];
    expect(levelsOf(list, [])).toEqual([
      { station: "cam1", level: "ok", since: "2026-12-07T09:00:00Z" },
      { station: "cam2", level: "unknown", since: null },
    ]);
    const after = levelsOf(list, [change("cam2", "watch"), change("cam9", "drift"), change("cam2", "drift")]);
    expect(after[1]).toEqual({ station: "cam2", level: "drift", since: "2026-12-07T10:32:00Z" }); // the newest change
    expect(after).toHaveLength(2); // a station the list does not know is left out
  });

  it("says since when with the date once it is not today's", () => {
    const now = new Date(2026, 11, 7, 15, 0, 0);
    expect(sinceText(new Date(2026, 11, 7, 9, 5, 3).toISOString(), now)).toBe("09:05:03");
    expect(sinceText(new Date(2026, 11, 5, 9, 5, 3).toISOString(), now)).toBe("2026-12-05 09:05:03");
  });

  it("is nothing before any station was checked, a quiet line while none moved", () => {
    const { unmount } = renderAs("viewer", <DriftOverview />, fakeStream(), { stations: [station("cam1")] });
    expect(screen.queryByTestId("drift-overview-quiet")).toBeNull();
    unmount();
    renderAs("viewer", <DriftOverview />, fakeStream(), { stations: [station("cam1", "ok"), station("cam2", "ok")] });
    expect(screen.getByTestId("drift-overview-quiet").textContent).toContain("all 2 stations checked — parts score and look as when");
  });

  it("names the stations that moved, drift first, live, each a way to choose it", () => {
    const setStation = vi.fn();
    const stream = fakeStream();
    renderAs("viewer", <DriftOverview />, stream, {
      stations: [station("cam1", "ok"), station("cam2", "watch", "2026-12-07T09:15:00Z"), station("cam3", "ok")],
      setStation,
    });
    expect(screen.getAllByTestId("drift-overview-station").map((a) => a.textContent)).toEqual([
      expect.stringMatching(/^cam2: watch since /),
    ]);
    act(() => stream.drift.forEach((f) => f(change("cam3", "drift"))));
    const named = screen.getAllByTestId("drift-overview-station");
    expect(named.map((a) => a.textContent?.split(":")[0])).toEqual(["cam3", "cam2"]);
    expect(screen.getByTestId("drift-overview").textContent).toContain("2 stations' parts have moved");
    act(() => named[0].click());
    expect(setStation).toHaveBeenCalledWith("cam3");
  });
});
