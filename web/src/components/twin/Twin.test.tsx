import { act, fireEvent, screen, waitFor, within } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { useRoute } from "../../lib/router";
import { BOTTLING } from "../../test/twin";
import type { LineModelDoc, LineState } from "../../lib/twin";
import { renderAs, stubFetch } from "../../test/machines";
import { MapView } from "./MapView";
import { ModelView } from "./ModelView";
import { OeeView } from "./OeeView";
import { Comparison, PlanResult, WhatIfView } from "./WhatIfView";

const now = new Date().toISOString();
const STATE: LineState = {
  line: "bottling",
  at: now,
  machines: [
    { machine: "filler", state: "running", since: now, reason: null, job: "cola", good: 120, defective: 2, health: { open_alerts: 1, rul: 500, rul_low: 310, rul_high: 700, failure_probability: null } },
    { machine: "capper", state: "down", since: now, reason: "cap chute jam", job: null, good: 100, defective: 0, health: { open_alerts: 0 } },
  ],
  buffers: [
    { buffer: "capper infeed", level: 20, capacity: 20 },
    { buffer: "accumulation table", level: 12, capacity: 60 },
  ],
};
const DOC: LineModelDoc = { line: "bottling", version: 3, model: BOTTLING, updated_at: "2026-12-01T08:00:00Z" };

describe("the line map", { timeout: 15_000 }, () => {
  afterEach(() => vi.unstubAllGlobals());

  it("shows each machine's state in words and symbols, buffers' fill, counts and health, and follows live events", async () => {
    stubFetch({ "GET /api/v1/lines/bottling/state": STATE as unknown as Record<string, unknown> });
    const { stream } = renderAs("viewer", <MapView line="bottling" model={BOTTLING} />);
    await screen.findByTestId("line-map");
    const filler = screen.getAllByTestId("map-machine").find((n) => n.getAttribute("data-machine") === "filler")!;
    expect(filler).toHaveAttribute("data-state", "running");
    expect(filler.getAttribute("aria-label")).toMatch(/^filler: running for \d+ s \(|^filler: running for \d+ s, 120 good, 2 defective; ⚠ 1 open alert · RUL ≥ 310 cycles$/);
    expect(filler).toHaveAttribute("href", "#/line/bottling/timeline?machine=filler");
    expect(within(filler as unknown as HTMLElement).getByTestId("map-counts")).toHaveTextContent("✔ 120 good · ✖ 2 defective");
    const capper = screen.getAllByTestId("map-machine").find((n) => n.getAttribute("data-machine") === "capper")!;
    expect(capper).toHaveAttribute("data-state", "down");
    expect(capper.textContent).toContain("✖ down");
    const buf = screen.getAllByTestId("map-buffer").find((n) => n.getAttribute("data-buffer") === "capper infeed")!;
    expect(buf).toHaveAttribute("aria-label", "buffer capper infeed: 20 / 20, full");
    // a machine without state yet: no data
    const packer = screen.getAllByTestId("map-machine").find((n) => n.getAttribute("data-machine") === "packer")!;
    expect(packer).toHaveAttribute("data-state", "unknown");
    expect(screen.getByTestId("state-legend")).toHaveTextContent("▶running‖idle■blocked○starved✖down⚙maintenance?no data");
    const row = screen.getAllByTestId("map-row").find((r) => r.getAttribute("data-machine") === "filler")!;
    expect(row).toHaveTextContent("1 open alert · RUL ≥ 310 cycles");

    await act(async () => {
      stream.twinEvents.forEach((f) => f({ type: "twin_event", line: "bottling", machine: "capper", ts: new Date().toISOString(), kind: "state", state: "running", data: { good: 0 } }));
    });
    await waitFor(() => expect(screen.getAllByTestId("map-machine").find((n) => n.getAttribute("data-machine") === "capper")).toHaveAttribute("data-state", "running"));
    expect(screen.getByTestId("map-as-of")).toHaveTextContent("1 live event");
  });

  it("says when the state cannot be loaded", async () => {
    stubFetch({});
    renderAs("viewer", <MapView line="bottling" model={BOTTLING} />);
    expect(await screen.findByText("The line's state could not be loaded")).toBeInTheDocument();
  });
});

describe("OEE", { timeout: 15_000 }, () => {
  afterEach(() => vi.unstubAllGlobals());

  it("shows A × P × Q of the line, machines and shifts and the loss waterfall", async () => {
    const fig = (over: object) => ({
      availability: 0.8,
      performance: 0.9,
      quality: 0.95,
      oee: 0.684,
      planned_busy_s: 28800,
      planned_operation_s: 28800,
      production_s: 23040,
      good: 3000,
      scrap: 20,
      rework: 10,
      ideal_s: 20000,
      losses: { downtime_s: { "valve jam": 3600 }, delay_s: { starved: 2160 }, speed_loss_s: 2000, scrap_loss_s: 100, rework_loss_s: 50, planned_downtime_s: 0, no_data_s: 0 },
      ...over,
    });
    const sent = stubFetch({
      "GET /api/v1/lines/bottling/oee": {
        from: "",
        to: "",
        line: fig({ name: "bottling", output_oee: 0.71 }),
        machines: [fig({ name: "filler", machine: "filler" }), fig({ name: "capper", machine: "capper", oee: 0.5 })],
        shifts: [fig({ name: "early", shift: "early", start: "2026-12-01T05:00:00Z", end: "2026-12-01T13:00:00Z", machines: [] })],
        rejected: 0,
      },
    });
    renderAs("viewer", <OeeView line="bottling" model={BOTTLING} />);
    expect(await screen.findByTestId("oee-line-oee")).toHaveTextContent("68.4 %");
    expect(screen.getByTestId("oee-line-a")).toHaveTextContent("80.0 %");
    expect(screen.getByTestId("oee-line-output")).toHaveTextContent("71.0 %");
    expect(within(screen.getByTestId("oee-machines")).getAllByTestId("oee-row")).toHaveLength(2);
    expect(within(screen.getByTestId("oee-shifts")).getByText("early")).toBeInTheDocument();
    const table = screen.getByTestId("loss-table");
    expect(table).toHaveTextContent("Downtime: valve jam1 h12.5 %");
    expect(table).toHaveTextContent("Fully productive time");
    expect(screen.getByTestId("loss-waterfall")).toHaveAttribute("aria-label", expect.stringContaining("Speed loss 33 min"));
    const q = sent.find((s) => s.url.pathname.endsWith("/oee"))!.url.searchParams;
    expect(Date.parse(q.get("to")!) - Date.parse(q.get("from")!)).toBeLessThanOrEqual(86400_000 * 3); // the last shift
  });
});

describe("the model editor", { timeout: 15_000 }, () => {
  afterEach(() => vi.unstubAllGlobals());

  it("shows a viewer the model, read only", () => {
    renderAs("viewer", <ModelView line="bottling" doc={DOC} onSaved={() => {}} />);
    expect(screen.getByTestId("model-json")).toHaveTextContent('"name": "bottling"');
    expect(screen.queryByTestId("model-save")).not.toBeInTheDocument();
  });

  it("saves an engineer's model and lists a 422's problems at their paths and lines", async () => {
    const bodies: unknown[] = [];
    let status = 422;
    vi.stubGlobal(
      "fetch",
      vi.fn(async (req: Request) => {
        bodies.push(JSON.parse(await req.text()));
        if (status === 422)
          return new Response(JSON.stringify({ detail: [{ path: "machines[0].cycle_time_s", message: "must be > 0" }] }), { status: 422 });
        return new Response(JSON.stringify({ ...DOC, version: 4 }), { status: 200 });
      }),
    );
    const saved = vi.fn();
    renderAs("engineer", <ModelView line="bottling" doc={null} onSaved={saved} />);
    expect(screen.getByTestId("model-empty")).toHaveTextContent("Paste the line's model");
    const bad = { name: "bottling", machines: [{ name: "a", operation: "x", cycle_time_s: 0 }] };
    fireEvent.change(screen.getByTestId("model-text"), { target: { value: JSON.stringify(bad) } });
    fireEvent.click(screen.getByTestId("model-save"));
    const err = await screen.findByTestId("model-error");
    expect(err).toHaveTextContent("machines[0].cycle_time_s: must be > 0 line 7");
    expect(bodies[0]).toEqual(bad); // the body is the model itself
    expect((screen.getByTestId("model-text") as HTMLTextAreaElement).value).toBe(JSON.stringify(bad, null, 2));
    status = 200;
    fireEvent.click(screen.getByTestId("model-save"));
    expect(await screen.findByTestId("model-message")).toHaveTextContent("Saved: version 4 of bottling's model.");
    expect(saved).toHaveBeenCalledWith(expect.objectContaining({ version: 4 }));
  });
});

describe("what-if", { timeout: 15_000 }, () => {
  afterEach(() => vi.unstubAllGlobals());
  const stat = (mean: number) => ({ mean, sd: 1, ci_low: mean * 0.95, ci_high: mean * 1.05, n: 3 });
  const result = {
    scenarios: [
      { scenario: "base", hours: 8, replications: 3, bottleneck: { capper: 1 }, stats: { throughput_per_h: stat(500), lead_time_s: stat(600), wip: stat(40), "machines.capper.utilisation": stat(0.9), "machines.capper.blocked": stat(0.01) } },
      { scenario: "second capper", hours: 8, replications: 3, bottleneck: { filler: 1 }, stats: { throughput_per_h: stat(560), lead_time_s: stat(500), wip: stat(35), "machines.capper.utilisation": stat(0.5), "machines.capper.blocked": stat(0.02) } },
    ],
  };

  it("compares the scenarios with intervals, the bottleneck marked", () => {
    renderAs("viewer", <Comparison result={result} />);
    expect(screen.getByTestId("compare-throughput_per_h")).toHaveAttribute("aria-label", expect.stringContaining("base 500 [475, 525] parts/h; second capper 560 [532, 588] parts/h"));
    expect(screen.getByTestId("comparison-table")).toHaveTextContent("560 [532, 588] (+60)");
    expect(screen.getByTestId("comparison-meta")).toHaveTextContent("Bottleneck: base: capper; second capper: filler.");
    const group = within(screen.getByTestId("compare-utilisation")).getAllByTestId("compare-group")[0];
    expect(group).toHaveAttribute("data-bottleneck", "true");
  });

  it("shows how a schedule's plan holds up: plan vs simulated with intervals, the jobs at risk", () => {
    const st = (mean: number, half = 1) => ({ mean, sd: half, ci_low: mean - half, ci_high: mean + half, n: 4 });
    const plan = {
      schedule_id: 3,
      schedule: "shift plan",
      time_unit_s: 60,
      release: "planned",
      planned: { makespan: 18, weighted_tardiness: 5, tardiness: 5, late_jobs: 1, late: ["J2"] },
      simulated: { makespan: st(22), weighted_tardiness: st(20, 2), tardiness: st(20, 2), late_jobs: st(2, 0) },
      late_share: 0.75,
      jobs: [
        { job: "J0", due: 13, planned_end: 8, end: st(8, 0), lateness: st(0, 0), late_share: 0 },
        { job: "J2", due: 13, planned_end: 18, end: st(22), lateness: st(4), late_share: 1 },
      ],
    };
    renderAs("viewer", <PlanResult plan={plan} />);
    expect(screen.getByTestId("plan-result")).toHaveTextContent("How schedule #3 “shift plan” holds up on the line");
    expect(screen.getByTestId("plan-result")).toHaveTextContent("In 75 % of the replications at least one job is late.");
    const table = screen.getByTestId("plan-table");
    expect(table).toHaveTextContent("Makespan (min)1822 [21, 23] (+22.2 %)");
    expect(table).toHaveTextContent("Late jobs (jobs)12");
    const late = screen.getByTestId("plan-late-jobs");
    expect(within(late).getAllByRole("row")).toHaveLength(2); // the header and J2 (J0 ends as planned)
    expect(late).toHaveTextContent("J2131822 [21, 23]4 [3, 5]100 % of runs");
  });

  it("runs a scenario from the form, follows its job and shows the comparison; viewers only read", async () => {
    let status = "running";
    const sent = stubFetch({
      "GET /api/v1/lines/bottling/simulations": [],
      "POST /api/v1/lines/bottling/simulations": { id: 7, job_id: 7 },
      "GET /api/v1/jobs/7": () => ({ id: 7, kind: "twin_simulate", status, progress: status === "running" ? 0.5 : 1, message: "", params: {}, result: null }),
      "GET /api/v1/lines/bottling/simulations/7": () => ({ id: 7, job_id: 7, status, progress: status === "running" ? 0.5 : 1, message: "", request: { hours: 2, replications: 2, seed: 0, from_live: false, scenarios: [{ name: "what-if", overrides: {} }] }, result: status === "succeeded" ? result : null }),
    });
    location.hash = "#/line/bottling/whatif";
    function Routed() {
      const sim = useRoute().query.get("sim");
      return <WhatIfView line="bottling" doc={DOC} sim={sim ? Number(sim) : null} />;
    }
    const { stream } = renderAs("engineer", <Routed />);
    fireEvent.change(screen.getByLabelText("Capacity of accumulation table"), { target: { value: "120" } });
    fireEvent.change(screen.getByLabelText("Machines like capper to add"), { target: { value: "1" } });
    expect(screen.getByTestId("scenario-overrides")).toHaveTextContent('"like": "capper"');
    fireEvent.change(screen.getByTestId("scenario-raw"), { target: { value: "{nope" } });
    expect(screen.getByTestId("sim-run")).toBeDisabled();
    fireEvent.change(screen.getByTestId("scenario-raw"), { target: { value: "" } });
    fireEvent.change(screen.getByTestId("sim-hours").querySelector("input") ?? screen.getByLabelText("Hours"), { target: { value: "2" } });
    fireEvent.click(screen.getByTestId("sim-run"));
    await waitFor(() => expect(location.hash).toBe("#/line/bottling/whatif?sim=7"));
    const post = sent.find((s) => s.method === "POST")!;
    expect(post.body).toMatchObject({
      hours: 2,
      replications: 5,
      from_live: false,
      scenarios: [{ name: "what-if", overrides: { machines: [{ name: "capper 2", like: "capper" }], buffers: [{ name: "accumulation table", capacity: 120 }] } }],
    });
    expect(await screen.findByTestId("sim-progress")).toHaveTextContent("Simulation #7");
    status = "succeeded";
    await act(async () => {
      stream.jobs.forEach((f) => f({ id: 7, kind: "simulation", status: "succeeded", progress: 1, message: "done" }));
    });
    expect(await screen.findByTestId("comparison")).toBeInTheDocument();
  });

  it("offers viewers no run", () => {
    stubFetch({ "GET /api/v1/lines/bottling/simulations": [] });
    renderAs("viewer", <WhatIfView line="bottling" doc={DOC} sim={null} />);
    expect(screen.getByTestId("whatif-viewer")).toBeInTheDocument();
    expect(screen.queryByTestId("sim-run")).not.toBeInTheDocument();
  });
});
