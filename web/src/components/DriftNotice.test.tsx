import { act, screen, waitFor } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { fakeStream, renderAs, stubFetch } from "../test/machines";
import { DriftNotice, type Drift, driftFigures, driftTitle, quietWhat } from "./DriftNotice";
import { trendData, trendFigures } from "./DriftTrend";

function drift(over: Partial<Drift> = {}): Drift {
  return {
    station: "cam1",
    model_id: 7,
    level: "ok",
    reason: "scores look as when the thresholds were set: the typical recent score is at percentile 51",
    recent: 500,
    reference: 76,
    since: "2026-12-06T08:00:00Z",
    until: "2026-12-06T09:00:00Z",
    reference_source: "training",
    reference_at: "2026-12-06T07:00:00Z",
    shift_auroc: 0.51,
    p_value: 0.8,
    median_percentile: 51,
    scores_level: "ok",
    flags: 6,
    reviewed_flags: 0,
    flagged_share: 0.012,
    promised_rate: 0.01,
    false_alarms: null,
    false_alarm_share: null,
    false_alarm_p: null,
    false_alarms_level: "unknown",
    look_auroc: 0.52,
    look_p: 0.4,
    look_level: "ok",
    brightness_change: -0.01,
    brightness_auroc: 0.49,
    brightness_p: 0.7,
    brightness_level: "ok",
    trend: [],
    reference_band: null,
    farthest: [],
    ...over,
  };
}

describe("DriftNotice", () => {
  afterEach(() => vi.unstubAllGlobals());

  it("is a quiet line while the scores hold", async () => {
    const sent = stubFetch({ "GET /api/v1/stations/cam1/drift": drift() });
    renderAs("viewer", <DriftNotice station="cam1" />);
    const line = await screen.findByTestId("drift-quiet");
    expect(line.textContent).toContain("scores and photos as when the thresholds were set");
    expect(line.textContent).toContain("500 recent parts against 76 good scores");
    expect(line.textContent).toContain("1.2 % flagged");
    expect(sent[0].url.pathname).toBe("/api/v1/stations/cam1/drift");
    expect(screen.queryByTestId("drift-alert")).toBeNull();
  });

  it("warns when the scores drift and shows an engineer the way to recalibrate", async () => {
    const drifted = drift({
      level: "drift",
      scores_level: "watch",
      false_alarms_level: "drift",
      shift_auroc: 0.71,
      false_alarms: 40,
      false_alarm_share: 0.08,
      reason: "reviewers overturned 40 flags among 500 parts; set the thresholds again on today's good parts",
    });
    stubFetch({ "GET /api/v1/stations/cam1/drift": drifted });
    renderAs("engineer", <DriftNotice station="cam1" />);
    const alert = await screen.findByTestId("drift-alert");
    expect(alert.textContent).toContain("cam1: scores have drifted");
    expect(alert.textContent).toContain("reviewers overturned 40 flags among 500 parts");
    expect(alert.textContent).toContain("8.0 % overturned by reviewers against 1.0 % promised");
    expect(screen.getByTestId("drift-recalibrate").getAttribute("href")).toBe("#/models?id=7&station=cam1");
  });

  it("names a moving station without the link for someone who cannot recalibrate", async () => {
    stubFetch({ "GET /api/v1/stations/cam1/drift": drift({ level: "watch", reason: "scores are higher" }) });
    renderAs("operator", <DriftNotice station="cam1" />);
    expect((await screen.findByTestId("drift-alert")).textContent).toContain("cam1: scores are moving");
    expect(screen.queryByTestId("drift-recalibrate")).toBeNull();
  });

  it("says nothing for a station that runs no model, and says so when the watch cannot be loaded", async () => {
    vi.stubGlobal(
      "fetch",
      vi.fn(async () => new Response(JSON.stringify({ detail: "station 'cam1' runs no model" }), { status: 409 })),
    );
    renderAs("viewer", <DriftNotice station="cam1" />);
    await waitFor(() => expect(vi.mocked(fetch)).toHaveBeenCalled());
    await new Promise((r) => setTimeout(r, 20)); // the refused request handled
    for (const id of ["drift-quiet", "drift-alert", "drift-error"]) expect(screen.queryByTestId(id)).toBeNull();
    vi.stubGlobal("fetch", vi.fn(async () => new Response("{}", { status: 500 })));
    renderAs("viewer", <DriftNotice station="cam2" />);
    expect((await screen.findByTestId("drift-error")).textContent).toContain("could not be loaded");
  });

  it("loads the figures again at once when the service's watch sends a change of this station's level", async () => {
    let answer = drift();
    const sent = stubFetch({ "GET /api/v1/stations/cam1/drift": () => answer });
    const stream = fakeStream();
    renderAs("viewer", <DriftNotice station="cam1" />, stream);
    await screen.findByTestId("drift-quiet");
    expect(sent).toHaveLength(1);
    const change = { type: "station_drift" as const, model_id: 7, previous_level: "ok", reason: "", shift_auroc: 0.9 };
    act(() => stream.drift.forEach((f) => f({ ...change, station: "cam2", level: "drift", false_alarm_share: null, at: "" })));
    expect(sent).toHaveLength(1); // another station's change
    answer = drift({ level: "drift", reason: "scores are higher than when the thresholds were set" });
    act(() => stream.drift.forEach((f) => f({ ...change, station: "cam1", level: "drift", false_alarm_share: null, at: "" })));
    expect((await screen.findByTestId("drift-alert")).textContent).toContain("cam1: scores have drifted");
    expect(sent).toHaveLength(2);
  });

  it("says what an ok watch compared", () => {
    expect(quietWhat(drift())).toBe("scores and photos");
    expect(quietWhat(drift({ look_level: "unknown", brightness_level: "unknown" }))).toBe("scores");
  });

  it("puts the figures in one line", () => {
    const none = { look_auroc: null, brightness_change: null };
    expect(driftFigures(drift({ shift_auroc: null, flagged_share: null, ...none }))).toBe(
      "500 recent parts against 76 good scores the thresholds were set on",
    );
    expect(driftFigures(drift({ shift_auroc: null, flagged_share: null, brightness_change: -0.2 }))).toBe(
      "500 recent parts against 76 good scores the thresholds were set on · look AUROC 0.52 · brightness −20 %",
    );
  });

  it("charts when something moved: open while the station drifts, on request while it does not", async () => {
    const trend = [0, 1, 2].map((i) => ({
      until: `2026-12-07T10:0${i}:00Z`,
      parts: 10,
      score: 1 + i,
      brightness: i === 0 ? null : 0.5 - 0.05 * i,
      look: null,
    }));
    const band = { score: [0.5, 1, 2], brightness: [0.45, 0.5, 0.55], look: null };
    const dim = drift({ level: "drift", brightness_level: "drift", trend, reference_band: band });
    expect(trendFigures(dim)).toEqual(["score", "brightness"]);
    expect(trendData(dim, "brightness")).toEqual([
      [10, 20, 30],
      [null, 0.45, 0.4],
      [0.45, 0.45, 0.45],
      [0.55, 0.55, 0.55],
    ]);
    expect(trendData(dim, "look")[2]).toEqual([null, null, null]);
    stubFetch({ "GET /api/v1/stations/cam1/drift": dim });
    const { unmount } = renderAs("viewer", <DriftNotice station="cam1" />);
    await screen.findByTestId("drift-alert");
    expect(screen.getByTestId("drift-trend")).toBeTruthy();
    act(() => screen.getByTestId("drift-trend-toggle").click());
    expect(screen.queryByTestId("drift-trend")).toBeNull();
    unmount();
    vi.unstubAllGlobals();
    stubFetch({ "GET /api/v1/stations/cam1/drift": drift({ trend }) });
    renderAs("viewer", <DriftNotice station="cam1" />);
    await screen.findByTestId("drift-quiet");
    expect(screen.queryByTestId("drift-trend")).toBeNull();
    act(() => screen.getByTestId("drift-trend-toggle").click());
    expect(screen.getByTestId("drift-trend")).toBeTruthy();
  });

  it("links the photos that look least like the good ones when the looks moved", async () => {
    const farthest = [
      { inspection_id: 41, distance: 0.3 },
      { inspection_id: 40, distance: 0.2 },
    ];
    stubFetch({ "GET /api/v1/stations/cam1/drift": drift({ level: "drift", look_level: "drift", farthest }) });
    const { unmount } = renderAs("viewer", <DriftNotice station="cam1" />);
    const strip = await screen.findByTestId("drift-farthest");
    expect([...strip.querySelectorAll("a")].map((a) => a.getAttribute("href"))).toEqual(["#/inspections/41", "#/inspections/40"]);
    unmount();
    vi.unstubAllGlobals();
    stubFetch({ "GET /api/v1/stations/cam1/drift": drift({ level: "drift", brightness_level: "drift", farthest }) });
    renderAs("viewer", <DriftNotice station="cam1" />);
    await screen.findByTestId("drift-alert");
    expect(screen.queryByTestId("drift-farthest")).toBeNull(); // the light, not the looks: no photos to single out
  });

  it("says the photos changed when they moved and the scores did not", () => {
    const dim = drift({ level: "drift", brightness_level: "drift", brightness_change: -0.22 });
    expect(driftTitle("cam1", dim)).toBe("cam1: the photos have changed");
    expect(driftTitle("cam1", { ...dim, level: "watch", brightness_level: "watch" })).toBe("cam1: the photos are changing");
    expect(driftTitle("cam1", { ...dim, scores_level: "drift" })).toBe("cam1: scores have drifted");
    expect(driftTitle("cam1", drift({ level: "watch", scores_level: "watch" }))).toBe("cam1: scores are moving");
  });
});
