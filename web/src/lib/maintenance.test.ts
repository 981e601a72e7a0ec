import { describe, expect, it } from "vitest";
import { addPrediction, fmtRul, fromEvent, headline, inUnit, ruleOf, thresholdIn, type MaintenancePoint } from "./maintenance";

const pt = (cycle: number, rul: number, low = rul - 2, high = rul + 2): MaintenancePoint => ({
  time: new Date(Date.UTC(2026, 11, 3, 10, cycle)).toISOString(),
  cycle,
  rul,
  rul_low: low,
  rul_high: high,
  failure_probability: null,
});

describe("maintenance helpers", () => {
  it("reads a model's rule with the service's defaults", () => {
    expect(ruleOf({ kind: "rul", params: { cycle_s: 60, alert_below_s: 600 } })).toEqual({ target: "rul", cycle_s: 60, alert_below_s: 600, alert_above: null });
    expect(ruleOf({ kind: "rul", params: {} })).toMatchObject({ cycle_s: 3600, alert_below_s: 86400 });
    expect(ruleOf({ kind: "failure", params: { target: "failure" } })).toMatchObject({ target: "failure", alert_above: 0.5, alert_below_s: null });
    expect(ruleOf(null, 60).cycle_s).toBe(60);
  });

  it("converts cycles to hours as cycles × cycle_s / 3600, the threshold too", () => {
    expect(inUnit(30, "hours", 60)).toBe(0.5);
    expect(inUnit(30, "cycles", 60)).toBe(30);
    const rule = ruleOf({ kind: "rul", params: { cycle_s: 60, alert_below_s: 600 } });
    expect(thresholdIn(rule, "cycles")).toBe(10);
    expect(thresholdIn(rule, "hours")).toBeCloseTo(1 / 6);
    expect(fmtRul(30, 60)).toBe("30 cycles (30 min)");
    expect(fmtRul(5, 3600)).toBe("5.0 cycles (5.0 h)");
    expect(fmtRul(100, 3600)).toBe("100 cycles (4.2 days)");
  });

  it("says whether the newest prediction's lower bound is under the threshold", () => {
    const rule = ruleOf({ kind: "rul", params: { cycle_s: 60, alert_below_s: 600 } });
    expect(headline([], rule)).toEqual({ kind: "none" });
    expect(headline([pt(1, 40), pt(2, 20)], rule)).toMatchObject({ kind: "rul", rul: 20, low: 18, alerting: false, cycle: 2 });
    expect(headline([pt(1, 40), pt(2, 11, 9)], rule)).toMatchObject({ kind: "rul", alerting: true });
    const f = ruleOf({ kind: "failure", params: { alert_above: 0.3 } });
    expect(headline([{ ...pt(3, 0), rul: null, failure_probability: 0.4 }], f)).toMatchObject({ kind: "failure", probability: 0.4, alerting: true });
  });

  it("merges live points in time order, replacing one at the same time", () => {
    const list = [pt(1, 40), pt(3, 38)];
    expect(addPrediction(list, pt(4, 37)).map((p) => p.cycle)).toEqual([1, 3, 4]);
    expect(addPrediction(list, pt(2, 39)).map((p) => p.cycle)).toEqual([1, 2, 3]);
    expect(addPrediction(list, { ...pt(3, 30) }).map((p) => p.rul)).toEqual([40, 30]);
    expect(addPrediction([pt(1, 1), pt(2, 2)], pt(3, 3), 2).map((p) => p.cycle)).toEqual([2, 3]);
    const e = fromEvent({ machine: "m", time: 1_800_000_000, cycle: 7, cycle_s: 60, rul: 5, rul_low: 4, rul_high: 6, failure_probability: null, model_id: 2 });
    expect(e).toMatchObject({ cycle: 7, rul: 5, time: new Date(1_800_000_000_000).toISOString() });
  });
});
