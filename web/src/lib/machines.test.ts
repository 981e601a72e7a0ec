import { describe, expect, it } from "vitest";
import { alert, machine } from "../test/machines";
import { type LiveSeries, alertMatches, appendPoint, byLine, drivers, healthLevel, pointsFor, sortAlerts, withState } from "./machines";

describe("health", () => {
  it("is normal, watch or alerting by band; unknown without a model; alerting whenever an alert is open", () => {
    expect([0.95, 0.8, 0.79, 0.5, 0.49, 0].map((h) => healthLevel(h))).toEqual(["normal", "normal", "watch", "watch", "alerting", "alerting"]);
    expect(healthLevel(null)).toBe("unknown");
    expect(healthLevel(0.99, 1)).toBe("alerting");
    expect(healthLevel(null, 2)).toBe("alerting"); // a reading outside its range alerts without a model
  });

  it("takes a live state: health, the newer reading time, an open alert it reports", () => {
    const m = machine({ health: 0.9, last_reading_at: "2026-12-03T10:00:00.000Z" });
    const s = withState(m, { machine: "press-1", line: "L1", time: Date.parse("2026-12-03T10:00:05Z") / 1000, health: 0.4, score: 9, values: {}, readings: 3, open_alert_id: 7 });
    expect(s.health).toBe(0.4);
    expect(s.last_reading_at).toBe("2026-12-03T10:00:05.000Z");
    expect(s.open_alerts).toBe(1);
    const older = withState(s, { machine: "press-1", line: "L1", time: Date.parse("2026-12-03T09:00:00Z") / 1000, health: null, score: null, values: {}, readings: 1, open_alert_id: null });
    expect(older.last_reading_at).toBe("2026-12-03T10:00:05.000Z");
    expect(older.health).toBe(0.4); // a state without health (no model) keeps the last known
  });

  it("groups machines by line, both in name order", () => {
    const got = byLine([machine({ name: "b", line: "L2" }), machine({ name: "c", line: "L1" }), machine({ name: "a", line: "L1" })]);
    expect(got.map(([l, ms]) => [l, ms.map((m) => m.name)])).toEqual([
      ["L1", ["a", "c"]],
      ["L2", ["b"]],
    ]);
  });
});

describe("alerts", () => {
  it("lists open unacknowledged first, then open, closed unacknowledged, closed; newest first within", () => {
    const list = [
      alert({ id: 1, status: "closed", acknowledged: true }),
      alert({ id: 2, status: "open", acknowledged: true }),
      alert({ id: 3, status: "closed" }),
      alert({ id: 4, status: "open" }),
      alert({ id: 5, status: "open" }),
    ];
    expect(sortAlerts(list).map((a) => a.id)).toEqual([5, 4, 2, 3, 1]);
  });

  it("filters by machine, status and acknowledgement", () => {
    const a = alert({ machine: "m1", status: "open", acknowledged: true });
    expect(alertMatches(a, { machine: null, status: "all", acknowledged: "all" })).toBe(true);
    expect(alertMatches(a, { machine: "m2", status: "all", acknowledged: "all" })).toBe(false);
    expect(alertMatches(a, { machine: "m1", status: "closed", acknowledged: "all" })).toBe(false);
    expect(alertMatches(a, { machine: null, status: "open", acknowledged: "no" })).toBe(false);
    expect(alertMatches(a, { machine: null, status: "open", acknowledged: "yes" })).toBe(true);
  });

  it("says what drove an alert: model scores or a reading out of range", () => {
    expect(drivers(alert({ sensors: [{ sensor: "oil_temp", value: 250, reason: "above 200" }] }))).toBe("oil_temp above 200 (250)");
    expect(drivers(alert({ sensors: [1, 2, 3, 4].map((i) => ({ sensor: `s${i}`, score: i })) }))).toBe("s1 1.0, s2 2.0, s3 3.0 +1");
    expect(drivers(alert({ sensors: [{ reason: "remaining useful life's lower bound 3 cycles (0.05 h) is under 0.2 h" }] }))).toBe("remaining useful life's lower bound 3 cycles (0.05 h) is under 0.2 h");
  });
});

describe("live points", () => {
  const series = (): LiveSeries => ({ sensor: "t", unit: "", t: [100, 110], n: [2, 1], mean: [1, 5], min: [0, 5], max: [2, 5] });

  it("go into the last bucket while within its width (count, mean, min, max), else start a bucket on the grid", () => {
    const s = series();
    appendPoint(s, 115, 7, 10, 0);
    expect([s.n[1], s.mean[1], s.min[1], s.max[1]]).toEqual([2, 6, 5, 7]);
    appendPoint(s, 127, 3, 10, 0);
    expect(s.t).toEqual([100, 110, 120]);
    expect([s.mean[2], s.min[2], s.max[2]]).toEqual([3, 3, 3]);
  });

  it("drop what slid out of the window and ignore what is older than the newest bucket", () => {
    const s = series();
    appendPoint(s, 50, 9, 10, 0);
    expect(s.t).toEqual([100, 110]);
    appendPoint(s, 120, 1, 10, 105);
    expect(s.t).toEqual([110, 120]);
    expect(s.mean).toEqual([5, 1]);
  });

  it("ask for about one bucket per pixel, within the service's limits", () => {
    expect([pointsFor(0), pointsFor(5), pointsFor(1180), pointsFor(9000)]).toEqual([600, 10, 1180, 5000]);
  });
});
