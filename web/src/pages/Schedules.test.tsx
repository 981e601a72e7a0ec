import { act, fireEvent, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { ScheduleProgressEvent } from "../lib/schedules";
import { renderAs, stubFetch } from "../test/machines";
import SchedulesPage from "./Schedules";

// jsdom has no layout and no canvas: the Gantt's container is 900 px wide, its canvas draws nothing
vi.mock("@mantine/hooks", async (real) => ({
  ...(await real<typeof import("@mantine/hooks")>()),
  useElementSize: () => ({ ref: { current: null }, width: 900, height: 0 }),
}));
vi.mock("../components/ConvergenceChart", () => ({
  ConvergenceChart: ({ points }: { points: ScheduleProgressEvent[] }) => <div data-testid="stub-convergence">{points.length} points</div>,
}));

const instance = {
  format: "linewatch-jobshop",
  format_version: 1,
  name: "tiny",
  machines: ["saw", "mill"],
  jobs: [
    { name: "A", due: 10, operations: [{ machine: 0, duration: 5 }, { machine: 1, duration: 7 }] },
    { name: "B", operations: [{ machine: 1, duration: 4 }, { machine: 0, duration: 4 }] },
  ],
};
const ops = [
  { job: 0, index: 0, machine: 0, start: 0, end: 5 },
  { job: 1, index: 0, machine: 1, start: 0, end: 4 },
  { job: 1, index: 1, machine: 0, start: 5, end: 9 },
  { job: 0, index: 1, machine: 1, start: 5, end: 12 },
];
const base = { parent_id: null, solver: "cpsat", params: {}, changes: null, event: null, active: false, job_id: null, created_at: "2026-12-03T10:00:00Z" };
const unsolved = { ...base, id: 1, name: "tiny", status: "new", summary: null, instance, plan: null };
const solved = {
  ...unsolved,
  status: "solved",
  summary: { objective: "makespan", value: 12, makespan: 12, weighted_tardiness: 2, bound: 12, gap: 0, status: "optimal" },
  plan: { now: 0, operations: ops },
};
const replan = {
  ...solved,
  id: 2,
  name: "tiny (replan)",
  parent_id: 1,
  event: { type: "machine_down", machine: 1, time: 2, until: 6 },
  changes: { moved: [], moved_operations: 0, shifted_operations: 2, total_shift: 4, max_shift: 2, interrupted: [] },
  summary: { ...solved.summary, makespan: 14, value: 14 },
  plan: {
    now: 2,
    operations: [ops[0], { ...ops[1], start: 6, end: 10 }, { ...ops[2], start: 10, end: 14 }, { ...ops[3], start: 10, end: 17 }],
  },
};

describe("SchedulesPage", { timeout: 40_000 }, () => {
  beforeEach(() => {
    // jsdom has no canvas: the Gantt draws nothing, its DOM (focus, tooltip, labels) is what is tested
    HTMLCanvasElement.prototype.getContext = (() => null) as never;
  });
  afterEach(() => vi.unstubAllGlobals());

  it("lets an engineer create a schedule from pasted text, solve it and follow the incumbent and bound", async () => {
    let detail: unknown = unsolved;
    const sent = stubFetch({
      "GET /api/v1/schedules": [],
      "POST /api/v1/schedules": { ...unsolved },
      "GET /api/v1/schedules/1": () => detail,
      "POST /api/v1/schedules/1/solve": { id: 30, kind: "schedule_solve", status: "running", progress: 0.1, message: "solving", params: {} },
      "GET /api/v1/jobs/30": { id: 30, kind: "schedule_solve", status: "succeeded", progress: 1, message: "done", params: {}, result: { schedule_id: 1 } },
    });
    const { stream } = renderAs("engineer", <SchedulesPage id={null} />);
    expect(await screen.findByTestId("no-schedules")).toBeInTheDocument();
    const form = screen.getByTestId("schedule-create");
    await userEvent.click(within(form).getByRole("button", { name: "Create" }));
    expect(screen.getByTestId("schedule-create-error")).toHaveTextContent("Give the schedule a name");
    await userEvent.type(within(form).getByLabelText("Name"), "tiny");
    await userEvent.click(within(form).getByLabelText("Instance"));
    await userEvent.paste("2 2\n0 5 1 7\n1 4 0 4\n");
    await userEvent.click(within(form).getByRole("button", { name: "Create" }));
    await waitFor(() => expect(location.hash).toBe("#/schedules/1"));
    expect(sent.find((s) => s.method === "POST")!.body).toEqual({ name: "tiny", text: "2 2\n0 5 1 7\n1 4 0 4\n" });

    renderAs("engineer", <SchedulesPage id={1} />, stream);
    expect(await screen.findByTestId("schedule-unsolved")).toBeInTheDocument();
    await userEvent.click(screen.getByRole("button", { name: "Solve" }));
    expect(sent.find((s) => s.url.pathname.endsWith("/solve"))!.body).toEqual({ solver: "cpsat", params: { objective: "makespan", time_limit: 10 } });
    act(() => {
      stream.scheduleProgress.forEach((f) => f({ schedule_id: 1, elapsed_s: 0.4, value: 15, bound: 10 }));
      stream.scheduleProgress.forEach((f) => f({ schedule_id: 9, elapsed_s: 0.5, value: 99, bound: 1 }));
      stream.scheduleProgress.forEach((f) => f({ schedule_id: 1, elapsed_s: 0.9, value: 12, bound: 12 }));
    });
    expect(screen.getByTestId("convergence-now")).toHaveTextContent("incumbent 12 · bound 12 after 0.9 s");
    expect(screen.getByTestId("stub-convergence")).toHaveTextContent("2 points");
    detail = solved;
    act(() => stream.jobs.forEach((f) => f({ id: 30, kind: "schedule_solve", status: "succeeded", progress: 1, message: "done" })));
    expect(await screen.findByTestId("kpi-makespan")).toHaveTextContent("12");
    expect(screen.getByTestId("kpi-tardiness")).toHaveTextContent("2");
    expect(screen.getByTestId("kpi-late")).toHaveTextContent("1 of 2");
    expect(screen.getByTestId("kpi-gap")).toHaveTextContent("0.00 %");
    expect(screen.getByTestId("late-jobs")).toHaveTextContent("A (due 10, ends 12, +2)");
    expect(within(screen.getByTestId("utilisation")).getByText("mill")).toBeInTheDocument();
  });

  it("reads a plan's operations by keyboard in the Gantt", async () => {
    stubFetch({ "GET /api/v1/schedules": [solved], "GET /api/v1/schedules/1": solved });
    renderAs("viewer", <SchedulesPage id={1} />);
    const gantt = await screen.findByRole("application", { name: /Plan of tiny: 4 operations of 2 jobs on 2 machines, makespan 12, 1 late jobs/ });
    act(() => gantt.focus());
    expect(screen.getByTestId("gantt-focus")).toHaveTextContent("A, operation 1 on saw: 0 to 5 · due 10 · job late by 2");
    fireEvent.keyDown(gantt, { key: "ArrowRight" });
    expect(screen.getByTestId("gantt-focus")).toHaveTextContent("B, operation 2 on saw: 5 to 9");
    fireEvent.keyDown(gantt, { key: "ArrowDown" });
    expect(screen.getByTestId("gantt-tip")).toHaveTextContent("A, operation 2 on mill: 5 to 12");
    // a viewer: nothing to create, solve, replan or activate
    for (const id of ["schedule-create", "schedule-solve", "schedule-replan", "schedule-activate"]) expect(screen.queryByTestId(id)).toBeNull();
  });

  it("shows a replan's event and changes against its parent, and replans a machine down", async () => {
    const sent = stubFetch({
      "GET /api/v1/schedules": [replan, solved],
      "GET /api/v1/schedules/2": replan,
      "GET /api/v1/schedules/1": solved,
      "POST /api/v1/schedules/2/replan": { id: 31, kind: "schedule_replan", status: "queued", progress: 0, message: "", params: {} },
    });
    renderAs("engineer", <SchedulesPage id={2} />);
    const changes = await screen.findByTestId("schedule-changes");
    expect(changes).toHaveTextContent("Replanned from #1 tiny after mill went down at 2 until 6");
    await waitFor(() => expect(screen.getByTestId("schedule-changes-summary")).toHaveTextContent("makespan 12 → 17, weighted tardiness 2 → 7"));
    expect(screen.getByTestId("schedule-changes-summary")).toHaveTextContent("2 shifted in time");
    const gantt = screen.getByRole("application", { name: /3 operations changed from the parent plan/ });
    act(() => gantt.focus());
    fireEvent.keyDown(gantt, { key: "ArrowRight" });
    expect(screen.getByTestId("gantt-focus")).toHaveTextContent("B, operation 2 on saw: 10 to 14 · shifted from 5 (+5)");
    expect(screen.getByTestId("gantt-parent")).toHaveAttribute("data-operations", "4");

    const form = screen.getByTestId("schedule-replan");
    await userEvent.click(within(form).getByRole("button", { name: "Replan" }));
    expect(screen.getByTestId("schedule-message")).toHaveTextContent("Choose the machine");
    await userEvent.click(within(form).getByRole("textbox", { name: "Machine" }));
    await userEvent.click(await screen.findByRole("option", { name: "mill" }));
    const from = within(form).getByLabelText("Down from (time)");
    await userEvent.clear(from);
    await userEvent.type(from, "8");
    await userEvent.type(within(form).getByLabelText("Until (optional)"), "20");
    await userEvent.click(within(form).getByRole("button", { name: "Replan" }));
    await waitFor(() => expect(sent.some((s) => s.url.pathname.endsWith("/replan"))).toBe(true));
    expect(sent.find((s) => s.url.pathname.endsWith("/replan"))!.body).toEqual({
      event: { type: "machine_down", machine: 1, time: 8, until: 20 },
      params: { time_limit: 5 },
    });
  });
});
