import { describe, expect, it } from "vitest";
import { type ScenarioSummary, comparison, jobsAtRisk, planOf, planRows, plannable, unitLabel } from "./twin";

// a result of a simulation of a schedule's plan, as the service gives it (trimmed)
const stat = (mean: number, half = 0) => ({ mean, sd: half, ci_low: mean - half, ci_high: mean + half, n: 4 });
const result = {
  scenarios: [
    {
      scenario: "base",
      hours: 0.3,
      replications: 4,
      bottleneck: { press: 1 },
      stats: { makespan: stat(22, 1), weighted_tardiness: stat(20, 2), late_jobs: stat(2), "machines.press.utilisation": stat(0.6), "machines.press.down": stat(0.2) },
    },
  ],
  plan: {
    schedule_id: 3,
    schedule: "shift plan",
    time_unit_s: 60,
    release: "planned",
    planned: { makespan: 18, weighted_tardiness: 5, tardiness: 5, late_jobs: 1, late: ["J2"] },
    simulated: { makespan: stat(22, 1), weighted_tardiness: stat(20, 2), tardiness: stat(20, 2), late_jobs: stat(2) },
    late_share: 1,
    jobs: [
      { job: "J0", due: 13, planned_end: 8, end: stat(8), lateness: stat(0), late_share: 0 },
      { job: "J1", due: 13, planned_end: 13, end: stat(17, 1), lateness: stat(4, 1), late_share: 0.5 },
      { job: "J2", due: 13, planned_end: 18, end: stat(22, 1), lateness: stat(4, 1), late_share: 1 },
    ],
  },
};

describe("a schedule's plan run on the line", () => {
  it("reads the plan section, and nothing from a product-mix result", () => {
    expect(planOf(result)?.schedule_id).toBe(3);
    expect(planOf({ scenarios: [] })).toBeNull();
    expect(planOf(null)).toBeNull();
    expect(planOf({ plan: { schedule_id: 1 } })).toBeNull(); // no planned/simulated figures: not a plan section
  });

  it("sets the plan's figures beside the simulated ones, in the plan's unit", () => {
    const rows = planRows(planOf(result)!);
    expect(rows.map((r) => r.key)).toEqual(["makespan", "weighted_tardiness", "tardiness", "late_jobs"]);
    expect(rows[0]).toMatchObject({ unit: "min", planned: 18, simulated: { mean: 22, low: 21, high: 23 } });
    expect(rows[0].change).toBeCloseTo(22 / 18 - 1);
    expect(rows[3].unit).toBe("jobs");
    const zero = planRows({ ...planOf(result)!, planned: { makespan: 18, weighted_tardiness: 0, late_jobs: 0 } });
    expect(zero.map((r) => r.key)).toEqual(["makespan", "weighted_tardiness", "late_jobs"]); // tardiness not given
    expect(zero[1].change).toBeNull(); // no ratio to a planned 0
  });

  it("lists the jobs at risk, the most often late first", () => {
    expect(jobsAtRisk(planOf(result)!).map((j) => j.job)).toEqual(["J2", "J1"]);
  });

  it("names the time unit", () => {
    expect([unitLabel(60), unitLabel(1), unitLabel(3600), unitLabel(90), unitLabel(undefined)]).toEqual(["min", "s", "h", "× 90 s", "units"]);
  });

  it("offers solved schedules only, newest first", () => {
    const list = [
      { id: 1, name: "old", status: "solved" },
      { id: 2, name: "draft", status: "new" },
      { id: 4, name: "shift plan", status: "solved", active: true },
      { id: 3, name: "failed one", status: "failed" },
    ];
    expect(plannable(list)).toEqual([
      { value: "4", label: "#4 shift plan (active)" },
      { value: "1", label: "#1 old" },
    ]);
  });

  it("compares plan runs by makespan, tardiness and late jobs (not throughput)", () => {
    const metrics = comparison(result.scenarios as ScenarioSummary[], "min");
    expect(metrics.map((m) => m.key)).toEqual(["makespan", "weighted_tardiness", "late_jobs", "utilisation", "down"]);
    expect(metrics[0]).toMatchObject({ unit: "min", groups: [{ bars: [{ scenario: "base", mean: 22, low: 21, high: 23 }] }] });
  });
});
