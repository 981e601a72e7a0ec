import { describe, expect, it } from "vitest";
import {
  type LineModel,
  type LineState,
  type ScenarioSummary,
  allEvents,
  applyEvent,
  comparison,
  fieldErrors,
  flowLayout,
  fmtCi,
  fmtDuration,
  formOverrides,
  emptyForm,
  lastShift,
  lossWaterfall,
  mergeOverrides,
  parseOverrides,
  prettyWithLines,
  segments,
  summariesOf,
  timeInStates,
  zonedTime,
} from "./twin";
import { BOTTLING } from "../test/twin";

describe("flowLayout", () => {
  it("lays the line out left to right along the routings, parallel routings' operations in one column", () => {
    const l = flowLayout(BOTTLING);
    expect(l.columns).toEqual([["depalletise"], ["fill_cola", "fill_water"], ["cap"], ["inspect"], ["pack"]]);
    const at = (id: string) => l.nodes.find((n) => n.id === id)!;
    // buffers before their machines, columns left to right
    expect(at("b:infeed cola").x).toBeLessThan(at("m:filler").x);
    expect(at("b:infeed cola").x).toBe(at("b:infeed water").x);
    expect(at("b:infeed cola").y).toBeLessThan(at("b:infeed water").y);
    expect(at("m:depalletiser").x).toBeLessThan(at("b:infeed cola").x);
    expect(at("m:filler").x).toBeLessThan(at("b:capper infeed").x);
    expect(at("m:inspector").x).toBeLessThan(at("b:accumulation table").x);
    // the filler offers both fill operations: placed once
    expect(l.nodes.filter((n) => n.name === "filler")).toHaveLength(1);
    expect(l.nodes.every((n) => n.x + n.w <= l.width && n.y + n.h <= l.height && n.y >= 0)).toBe(true);
    const edges = l.edges.map((e) => `${e.from}>${e.to}${e.rework ? " (rework)" : ""}`);
    expect(edges).toEqual(
      expect.arrayContaining([
        "m:depalletiser>b:infeed cola",
        "m:depalletiser>b:infeed water",
        "b:infeed cola>m:filler",
        "b:infeed water>m:filler",
        "m:filler>b:capper infeed",
        "b:capper infeed>m:capper",
        "m:capper>m:inspector", // no buffer before inspect: straight to the machine
        "m:inspector>b:accumulation table",
        "b:accumulation table>m:packer",
        "m:inspector>b:capper infeed (rework)",
      ]),
    );
    expect(new Set(edges).size).toBe(edges.length);
  });

  it("stacks parallel machines, and without products follows the machines' order", () => {
    const model: LineModel = {
      name: "x",
      machines: [
        { name: "a", operation: "cut", cycle_time_s: 1 },
        { name: "b1", operation: "weld", cycle_time_s: 2 },
        { name: "b2", operation: "weld", cycle_time_s: 2 },
        { name: "c", operation: "paint", cycle_time_s: 1 },
      ],
    };
    const l = flowLayout(model);
    expect(l.columns).toEqual([["cut"], ["weld"], ["paint"]]);
    const b1 = l.nodes.find((n) => n.name === "b1")!;
    const b2 = l.nodes.find((n) => n.name === "b2")!;
    expect(b1.x).toBe(b2.x);
    expect(b2.y).toBeGreaterThan(b1.y + b1.h - 1);
    expect(l.edges.map((e) => `${e.from}>${e.to}`)).toEqual(["m:a>m:b1", "m:a>m:b2", "m:b1>m:c", "m:b2>m:c"]);
  });
});

describe("segments", () => {
  const t0 = Date.parse("2026-12-01T06:00:00Z");
  const min = 60_000;
  const at = (m: number) => new Date(t0 + m * min).toISOString();

  it("turns events into each machine's states over the range, from the state at its start", () => {
    const events = [
      { ts: at(10), machine: "filler", state: "down", reason: "valve jam", job: null },
      { ts: at(5), machine: "filler", state: "running", reason: null, job: null }, // out of order: sorted
      { ts: at(20), machine: "filler", state: "running", reason: null, job: null },
      { ts: at(25), machine: "filler", state: "running", reason: null, job: null }, // repeats the state: continues
      { ts: at(-5), machine: "filler", state: "idle", reason: null, job: null }, // before the range: ignored
      { ts: at(30), machine: "capper", state: "blocked", reason: null, job: null },
      { ts: at(40), machine: "capper", kind: "health", state: "idle", reason: null, job: null }, // not a state event
    ];
    const s = segments(["filler", "capper", "packer"], events, t0, t0 + 60 * min, new Map([["filler", { state: "starved" }]]));
    expect(s.get("filler")!.map((x) => [x.state, (x.start - t0) / min, (x.end - t0) / min, x.reason])).toEqual([
      ["starved", 0, 5, null],
      ["running", 5, 10, null],
      ["down", 10, 20, "valve jam"],
      ["running", 20, 60, null],
    ]);
    expect(s.get("capper")!.map((x) => [x.state, (x.start - t0) / min])).toEqual([
      ["unknown", 0],
      ["blocked", 30],
    ]);
    expect(s.get("packer")!.map((x) => x.state)).toEqual(["unknown"]);
    const times = timeInStates(s.get("filler")!);
    expect(times.map((x) => [x.state, x.ms / min])).toEqual([
      ["running", 45],
      ["starved", 5],
      ["down", 10],
    ]);
    expect(times.reduce((a, x) => a + x.share, 0)).toBeCloseTo(1);
  });

  it("pages through the events endpoint", async () => {
    const pages: Record<string, { items: { id: number; ts: string; machine: string; state: string }[]; next_cursor: string | null }> = {
      "": { items: [{ id: 1, ts: at(1), machine: "a", state: "running" }], next_cursor: "c1" },
      c1: { items: [{ id: 2, ts: at(2), machine: "a", state: "idle" }], next_cursor: null },
    };
    const r = await allEvents("L", { from: at(0), to: at(10) }, 100, async (_l, q) => pages[q.cursor ?? ""]);
    expect(r.items.map((x) => x.id)).toEqual([1, 2]);
    expect(r.truncated).toBe(false);
  });
});

describe("live state", () => {
  it("applies a twin_event: the state, since when, why, counts added", () => {
    const s: LineState = {
      line: "bottling",
      at: "2026-12-01T06:00:00Z",
      machines: [{ machine: "filler", state: "running", since: "2026-12-01T05:00:00Z", reason: null, good: 10, defective: 1 }],
      buffers: [],
    };
    const d = applyEvent(s, { line: "bottling", machine: "filler", ts: "2026-12-01T06:01:00Z", kind: "state", state: "down", reason: "valve jam", data: { good: 3 } });
    expect(d.machines[0]).toMatchObject({ state: "down", since: "2026-12-01T06:01:00Z", reason: "valve jam", good: 13, defective: 1 });
    expect(applyEvent(s, { line: "other", machine: "filler", ts: "x", state: "down" })).toBe(s);
    expect(applyEvent(s, { line: "bottling", machine: "nobody", ts: "x", state: "down" })).toBe(s);
    const h = applyEvent(d, { line: "bottling", machine: "filler", ts: "2026-12-01T06:02:00Z", kind: "health", data: { open_alerts: 1, rul_low: 40 } });
    expect(h.machines[0]).toMatchObject({ state: "down", health: { open_alerts: 1, rul_low: 40 } });
    const withBuffer = { ...s, buffers: [{ buffer: "infeed", level: 3, capacity: 30 }] };
    expect(applyEvent(withBuffer, { line: "bottling", machine: "infeed", ts: "2026-12-01T06:03:00Z", kind: "buffer", data: { level: 12 } }).buffers[0].level).toBe(12);
    expect(fmtDuration(59)).toBe("59 s");
    expect(fmtDuration(3 * 3600 + 300)).toBe("3 h 5 min");
  });
});

describe("OEE", () => {
  it("makes the loss waterfall from planned busy time down to the fully productive time", () => {
    const bars = lossWaterfall({
      availability: 0.8,
      performance: 0.9,
      quality: 0.95,
      oee: 0.684,
      planned_busy_s: 1000,
      losses: { downtime_s: { "valve jam": 100, leak: 150 }, delay_s: { starved: 50 }, speed_loss_s: 70, scrap_loss_s: 20, rework_loss_s: 10, planned_downtime_s: 0 },
    });
    expect(bars.map((b) => [b.label, b.seconds, b.start])).toEqual([
      ["Planned busy time", 1000, 0],
      ["Downtime: leak", 150, 850],
      ["Downtime: valve jam", 100, 750],
      ["Delay: starved", 50, 700],
      ["Speed loss", 70, 630],
      ["Scrap", 20, 610],
      ["Rework", 10, 600],
      ["Fully productive time", 600, 0],
    ]);
  });

  it("finds the last shift in the line's time zone", () => {
    // Tuesday 2026-12-01 10:00 in Berlin (UTC+1): the early shift runs since 06:00 local = 05:00 UTC
    const now = Date.parse("2026-12-01T09:00:00Z");
    const s = lastShift(BOTTLING.shifts, "Europe/Berlin", now);
    expect(s).toEqual({ name: "early", from: Date.parse("2026-12-01T05:00:00Z"), to: now });
    // Saturday: Friday's late shift, all of it
    const sat = Date.parse("2026-12-05T12:00:00Z");
    expect(lastShift(BOTTLING.shifts, "Europe/Berlin", sat)).toEqual({ name: "late", from: Date.parse("2026-12-04T13:00:00Z"), to: Date.parse("2026-12-04T21:00:00Z") });
    expect(lastShift([], undefined, now)).toEqual({ name: "last 8 h", from: now - 8 * 3600_000, to: now });
    // a summer date: UTC+2
    expect(zonedTime(2026, 7, 1, 6, 0, "Europe/Berlin")).toBe(Date.parse("2026-07-01T04:00:00Z"));
  });
});

describe("what-if", () => {
  it("turns the form into the model's scenario overrides, the raw JSON merged on top", () => {
    const form = emptyForm();
    form.extraMachines.capper = 1;
    form.bufferCapacity["accumulation table"] = 120;
    form.bufferCapacity["capper infeed"] = 20; // unchanged: left out
    form.failureFactor.filler = 2;
    form.defectRate.inspector = 0.03;
    form.mix.cola = 0.5;
    const o = formOverrides(BOTTLING, form);
    expect(o).toEqual({
      machines: [
        {
          name: "filler",
          failures: [
            { cause: "valve jam", mtbf_h: 2, mttr_min: 8 },
            { cause: "leak", time_to_failure_h: { dist: "weibull", shape: 1.5, scale: 15 }, time_to_repair_min: { dist: "lognormal", mean: 25, cv: 0.5 } },
          ],
        },
        { name: "capper 2", like: "capper" },
      ],
      buffers: [{ name: "accumulation table", capacity: 120 }],
      inspections: [{ machine: "inspector", defect_rate: 0.03 }],
      mix: { cola: 0.5 },
    });
    const raw = parseOverrides('{"buffers": [{"name": "accumulation table", "capacity": 200}, {"name": "capper infeed", "capacity": 5}], "mix": {"water": 0.5}}');
    expect("value" in raw).toBe(true);
    const merged = mergeOverrides(o, (raw as { value: Record<string, unknown> }).value);
    expect(merged.buffers).toEqual([
      { name: "accumulation table", capacity: 200 },
      { name: "capper infeed", capacity: 5 },
    ]);
    expect(merged.mix).toEqual({ cola: 0.5, water: 0.5 });
    expect(parseOverrides("")).toEqual({ value: {} });
    expect(parseOverrides("[1]")).toHaveProperty("error");
    expect(parseOverrides("{nope")).toHaveProperty("error");
  });

  it("makes the comparison's charts from the summaries, with intervals and the bottleneck", () => {
    const stat = (mean: number, hw: number) => ({ mean, sd: 1, ci_low: mean - hw, ci_high: mean + hw, n: 3 });
    const summaries: ScenarioSummary[] = [
      {
        scenario: "base",
        hours: 8,
        replications: 3,
        bottleneck: { capper: 0.67, filler: 0.33 },
        stats: {
          throughput_per_h: stat(500, 10),
          lead_time_s: stat(600, 60),
          wip: stat(40, 2),
          output_oee: stat(0.7, 0.01),
          "machines.filler.utilisation": stat(0.8, 0.02),
          "machines.capper.utilisation": stat(0.9, 0.02),
          "machines.filler.blocked": stat(0.1, 0.01),
          "machines.capper.blocked": stat(0.0, 0),
        },
      },
      {
        scenario: "second capper",
        hours: 8,
        replications: 3,
        bottleneck: { filler: 1 },
        stats: {
          throughput_per_h: stat(560, 12),
          lead_time_s: { mean: 540, ci_low: null, ci_high: null },
          wip: stat(35, 2),
          "machines.filler.utilisation": stat(0.9, 0.02),
          "machines.capper.utilisation": stat(0.5, 0.02),
          "machines.capper 2.utilisation": stat(0.5, 0.02),
        },
      },
    ];
    expect(summariesOf({ scenarios: summaries })).toHaveLength(2);
    expect(summariesOf(summaries)).toHaveLength(2);
    expect(summariesOf(null)).toEqual([]);
    const c = comparison(summaries);
    expect(c.map((m) => m.key)).toEqual(["throughput_per_h", "lead_time_s", "wip", "output_oee", "utilisation", "blocked"]);
    expect(c[0].groups[0].bars).toEqual([
      { scenario: "base", mean: 500, low: 490, high: 510 },
      { scenario: "second capper", mean: 560, low: 548, high: 572 },
    ]);
    expect(c[1].groups[0].bars[0]).toEqual({ scenario: "base", mean: 10, low: 9, high: 11 }); // minutes
    expect(fmtCi(c[1].groups[0].bars[1])).toBe("9");
    const util = c[4];
    expect(util.groups.map((g) => g.label)).toEqual(["filler", "capper", "capper 2"]);
    expect(util.groups[0].bottleneck).toEqual(["second capper"]);
    expect(util.groups[1].bottleneck).toEqual(["base"]);
    expect(util.groups[2].bars[0].mean).toBeNull(); // no capper 2 in the base
    expect(util.groups[1].bars[0].mean).toBeCloseTo(90);
  });
});

describe("model editor", () => {
  it("prints the model as JSON and finds the line of a 422's path", () => {
    const { text, lines } = prettyWithLines({ name: "x", machines: [{ name: "a", cycle_time_s: 0 }] });
    expect(text).toBe(JSON.stringify({ name: "x", machines: [{ name: "a", cycle_time_s: 0 }] }, null, 2));
    expect(lines.get("machines[0].cycle_time_s")).toBe(6);
    const errs = fieldErrors({ detail: [{ path: "machines[0].cycle_time_s", message: "must be > 0" }, { path: "machines[0].failures[1].mtbf_h", message: "x" }] }, lines);
    expect(errs).toEqual([
      { path: "machines[0].cycle_time_s", message: "must be > 0", line: 6 },
      { path: "machines[0].failures[1].mtbf_h", message: "x", line: 4 }, // the nearest enclosing path known
    ]);
    expect(fieldErrors({ detail: "the line model: buffers[0].before: unknown operation 'x'" })).toEqual([
      { path: "buffers[0].before", message: "unknown operation 'x'", line: undefined },
    ]);
  });
});
