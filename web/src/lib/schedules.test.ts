import { describe, expect, it } from "vitest";
import { addProgress, byMachine, diffPlans, fmtGap, fmtVal, jobColor, jobsOf, kpis, machineNames, step, windowsOf, type Operation } from "./schedules";

const op = (job: number, index: number, machine: number, start: number, end: number): Operation => ({ job, index, machine, start, end });

describe("schedule helpers", () => {
  it("names machines and jobs from the instance", () => {
    expect(machineNames({ machines: 3 })).toEqual(["M0", "M1", "M2"]);
    expect(machineNames({ machines: ["saw", "mill"] })).toEqual(["saw", "mill"]);
    expect(jobsOf({ jobs: [{ name: "a", due: 10, weight: 2 }, {}] })).toEqual([
      { name: "a", due: 10, weight: 2 },
      { name: "J1", due: null, weight: 1 },
    ]);
  });

  it("computes makespan, weighted tardiness, late jobs and utilisation", () => {
    const ops = [op(0, 0, 0, 0, 5), op(0, 1, 1, 5, 12), op(1, 0, 1, 0, 4), op(1, 1, 0, 5, 9)];
    const k = kpis(ops, [{ name: "a", due: 10, weight: 2 }, { name: "b", due: 20, weight: 1 }], 2, { bound: 11, gap: 0.0833, value: 12, objective: "makespan" });
    expect(k.makespan).toBe(12);
    expect(k.weightedTardiness).toBe(4); // job a ends 12, due 10, weight 2
    expect([...k.late]).toEqual([[0, { end: 12, due: 10 }]]);
    expect(k.utilisation).toEqual([9 / 12, 11 / 12]);
    expect(k).toMatchObject({ bound: 11, gap: 0.0833, value: 12 });
    expect(fmtGap(k.gap)).toBe("8.3 %");
    expect(fmtGap(0)).toBe("0.00 %");
    expect(fmtVal(70)).toBe("70");
    expect(fmtVal(12.3456789)).toBe("12.3457");
    expect(windowsOf({ unavailable: [{ machine: 2, start: 10, end: 30 }] })).toEqual([{ machine: 2, start: 10, end: 30 }]);
    expect(windowsOf({})).toEqual([]);
  });

  it("tells a replan's moved and shifted operations from its parent's", () => {
    const before = [op(0, 0, 0, 0, 5), op(0, 1, 1, 5, 9), op(1, 0, 2, 0, 3)];
    const after = [op(0, 0, 0, 0, 5), op(0, 1, 2, 5, 9), op(1, 0, 2, 9, 12)];
    const d = diffPlans(before, after);
    expect(d.get("0:1")?.change).toBe("moved");
    expect(d.get("1:0")?.change).toBe("shifted");
    expect(d.has("0:0")).toBe(false);
  });

  it("moves the Gantt's keyboard focus along machines and across them", () => {
    const rows = byMachine([op(0, 1, 1, 5, 9), op(0, 0, 0, 0, 5), op(1, 0, 1, 0, 4), op(1, 1, 0, 5, 9)], 3);
    expect(rows[1].map((o) => o.start)).toEqual([0, 5]);
    expect(step(rows, null, "")).toEqual([0, 0]);
    expect(step(rows, [0, 0], "ArrowRight")).toEqual([0, 1]);
    expect(step(rows, [0, 1], "ArrowRight")).toEqual([0, 1]);
    expect(step(rows, [0, 1], "ArrowDown")).toEqual([1, 1]); // nearest start on the next machine
    expect(step(rows, [1, 1], "ArrowDown")).toEqual([1, 1]); // machine 2 has nothing: stays
    expect(step(rows, [1, 1], "Home")).toEqual([1, 0]);
    expect(step([[], []], null, "")).toBeNull();
  });

  it("keeps a job's colour and the solver's progress in order", () => {
    expect(jobColor(3)).toBe(jobColor(3));
    expect(jobColor(3)).not.toBe(jobColor(4));
    let p = addProgress([], { schedule_id: 1, elapsed_s: 0.5, value: 60, bound: 40 });
    p = addProgress(p, { schedule_id: 1, elapsed_s: 1.0, value: 55, bound: 55 });
    p = addProgress(p, { schedule_id: 1, elapsed_s: 0.7, value: 58, bound: 50 });
    expect(p.map((x) => x.value)).toEqual([60, 55]);
  });
});
