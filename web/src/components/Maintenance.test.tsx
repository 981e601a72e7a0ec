import { act, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { MaintenancePoint, Rule, Unit } from "../lib/maintenance";
import { machine, renderAs, stubFetch } from "../test/machines";
import { MaintenanceSection } from "./Maintenance";

// jsdom has no canvas: the chart is its data in text
vi.mock("./MaintenanceChart", () => ({
  MaintenanceChart: ({ points, rule, unit }: { points: MaintenancePoint[]; rule: Rule; unit: Unit }) => (
    <div data-testid="stub-chart">
      {points.length} points, {rule.target}, {unit}, last {String(points.at(-1)?.rul ?? points.at(-1)?.failure_probability)}
    </div>
  ),
}));

const rulModel = {
  id: 7,
  machine: "press-1",
  version: 2,
  kind: "rul",
  method: "rul",
  params: { target: "rul", cycle_s: 60, alert_below_s: 600 },
  sensors: ["oil_temp", "pressure"],
  status: "ready",
  metrics: { training_seconds: 12.5 },
  source: { file: "history.csv" },
  job_id: 3,
  created_at: "2026-12-03T09:00:00Z",
  active: true,
};
const anomalyModel = { ...rulModel, id: 4, kind: "anomaly", version: 1, params: {}, source: { start: "x", end: "y" }, active: false };

const point = (cycle: number, rul: number): MaintenancePoint => ({
  time: new Date(Date.UTC(2026, 11, 3, 10, cycle)).toISOString(),
  cycle,
  rul,
  rul_low: rul - 3,
  rul_high: rul + 3,
  failure_probability: null,
});

function maintenance(preds: MaintenancePoint[], model: unknown = rulModel) {
  return { machine: "press-1", model, life_start: null, cycle_s: model ? 60 : null, predictions: preds };
}

describe("MaintenanceSection", { timeout: 40_000 }, () => {
  afterEach(() => vi.unstubAllGlobals());

  it("shows the RUL now with its interval, charts it in hours or cycles, and follows live predictions", async () => {
    const sent = stubFetch({
      "GET /api/v1/machines/press-1/maintenance": maintenance([point(1, 40), point(2, 30)]),
      "GET /api/v1/machines/press-1/models": [rulModel, anomalyModel],
    });
    const { stream } = renderAs("viewer", <MaintenanceSection machine={machine({ maintenance_model_id: 7 })} onChanged={() => {}} />);
    const head = await screen.findByTestId("maintenance-headline");
    await waitFor(() => expect(head).toHaveTextContent("RUL 30 cycles (30 min)"));
    expect(head).toHaveAttribute("data-alerting", "no");
    expect(head).toHaveTextContent("interval 27 to 33 cycles");
    expect(screen.getByTestId("stub-chart")).toHaveTextContent("2 points, rul, hours, last 30");
    await userEvent.click(screen.getByRole("radio", { name: "cycles" }));
    expect(screen.getByTestId("stub-chart")).toHaveTextContent("rul, cycles");
    // only maintenance models, with their kind; a viewer neither trains, activates nor records maintenance
    const rows = screen.getAllByTestId("maintenance-model-row");
    expect(rows).toHaveLength(1);
    expect(rows[0]).toHaveTextContent("RUL");
    expect(screen.queryByTestId("maintenance-train-form")).toBeNull();
    expect(screen.queryByTestId("maintenance-activate")).toBeNull();
    expect(screen.queryByTestId("maintenance-done")).toBeNull();

    // a live prediction under the threshold (lower bound 9 cycles × 60 s < 600 s)
    act(() => {
      stream.maintenance.forEach((f) =>
        f({ machine: "press-1", time: Date.UTC(2026, 11, 3, 10, 3) / 1000, cycle: 3, cycle_s: 60, rul: 12, rul_low: 9, rul_high: 15, failure_probability: null, model_id: 7 }),
      );
      stream.maintenance.forEach((f) =>
        f({ machine: "other", time: Date.UTC(2026, 11, 3, 10, 4) / 1000, cycle: 4, cycle_s: 60, rul: 1, rul_low: 0, rul_high: 2, failure_probability: null, model_id: 9 }),
      );
    });
    expect(head).toHaveTextContent("RUL 12 cycles (12 min)");
    expect(head).toHaveAttribute("data-alerting", "yes");
    expect(within(head).getByText("under threshold")).toBeInTheDocument();
    expect(screen.getByTestId("stub-chart")).toHaveTextContent("3 points");

    // cycles skipped (the service sends the newest of a batch): the history is fetched again
    const before = sent.filter((s) => s.url.pathname.endsWith("/maintenance")).length;
    act(() => {
      stream.maintenance.forEach((f) =>
        f({ machine: "press-1", time: Date.UTC(2026, 11, 3, 10, 9) / 1000, cycle: 9, cycle_s: 60, rul: 5, rul_low: 3, rul_high: 7, failure_probability: null, model_id: 7 }),
      );
    });
    await waitFor(() => expect(sent.filter((s) => s.url.pathname.endsWith("/maintenance")).length).toBe(before + 1));
  });

  it("shows the failure risk of a failure model", async () => {
    const model = { ...rulModel, kind: "failure", params: { target: "failure", cycle_s: 3600, alert_above: 0.5 } };
    stubFetch({
      "GET /api/v1/machines/press-1/maintenance": maintenance([{ ...point(1, 0), rul: null, rul_low: null, rul_high: null, failure_probability: 0.12 }], model),
      "GET /api/v1/machines/press-1/models": [model],
    });
    renderAs("viewer", <MaintenanceSection machine={machine({ maintenance_model_id: 7 })} onChanged={() => {}} />);
    await waitFor(() => expect(screen.getByTestId("maintenance-headline")).toHaveTextContent("Failure risk 12.0 %"));
    expect(screen.getByTestId("stub-chart")).toHaveTextContent("failure");
    expect(screen.queryByRole("radio", { name: "cycles" })).toBeNull();
    expect(screen.getByTestId("maintenance-model-row")).toHaveTextContent("failure risk");
  });

  it("lets an operator record maintenance done only after confirming", async () => {
    const changed = vi.fn();
    const sent = stubFetch({
      "GET /api/v1/machines/press-1/maintenance": maintenance([]),
      "GET /api/v1/machines/press-1/models": [rulModel],
      "POST /api/v1/machines/press-1/maintenance/done": machine({ life_start: "2026-12-03T11:00:00Z" }),
    });
    renderAs("operator", <MaintenanceSection machine={machine({ maintenance_model_id: 7 })} onChanged={changed} />);
    await waitFor(() => expect(screen.getByTestId("maintenance-headline")).toHaveTextContent("No prediction yet"));
    expect(screen.queryByTestId("maintenance-train-form")).toBeNull();
    await userEvent.click(screen.getByRole("button", { name: "Maintenance done…" }));
    const dialog = await screen.findByRole("dialog", { name: "Record maintenance on press-1" });
    await userEvent.click(within(dialog).getByRole("button", { name: "Cancel" }));
    expect(sent.some((s) => s.method === "POST")).toBe(false);
    await userEvent.click(screen.getByRole("button", { name: "Maintenance done…" }));
    await userEvent.click(await screen.findByRole("button", { name: "Record maintenance" }));
    expect(await screen.findByTestId("maintenance-message")).toHaveTextContent("Maintenance recorded on press-1");
    expect(sent.filter((s) => s.method === "POST").map((s) => s.url.pathname)).toEqual(["/api/v1/machines/press-1/maintenance/done"]);
    expect(changed).toHaveBeenCalled();
  });

  it("lets an engineer upload a history to train (params as JSON) and activate a ready version", async () => {
    const ready = { ...rulModel, id: 8, version: 3, active: false };
    const sent = stubFetch({
      "GET /api/v1/machines/press-1/maintenance": maintenance([], null),
      "GET /api/v1/machines/press-1/models": [ready],
      "GET /api/v1/jobs": [],
      "POST /api/v1/machines/press-1/maintenance/train-file": { id: 21, kind: "maintenance_train", status: "queued", progress: 0, message: "", params: {} },
      "POST /api/v1/machine-models/8/activate": machine({ maintenance_model_id: 8 }),
    });
    renderAs("engineer", <MaintenanceSection machine={machine()} onChanged={() => {}} />);
    await waitFor(() => expect(screen.getByTestId("maintenance-headline")).toHaveTextContent("No active maintenance model: train one"));
    await userEvent.click(screen.getByRole("button", { name: "Train" }));
    expect(screen.getByTestId("maintenance-train-error")).toHaveTextContent("Choose a run-to-failure history file");
    const file = new File(["unit,cycle,oil_temp,pressure\n1,1,70,3\n"], "history.csv", { type: "text/csv" });
    const input = screen.getByTestId("maintenance-train-form").querySelector('input[type="file"]') as HTMLInputElement;
    await userEvent.upload(input, file);
    const cycle = screen.getByLabelText("Seconds per cycle");
    await userEvent.clear(cycle);
    await userEvent.type(cycle, "60");
    await userEvent.click(screen.getByLabelText("Engine parameters (JSON)"));
    await userEvent.paste('{"epochs": 2}');
    await userEvent.click(screen.getByRole("button", { name: "Train" }));
    await waitFor(() => expect(screen.queryByTestId("maintenance-train-error")?.textContent ?? "none").toBe("none"));
    expect(await screen.findByTestId("maintenance-progress")).toHaveTextContent("Job #21: queued");
    const post = sent.find((s) => s.url.pathname.endsWith("/train-file"))!;
    expect(post.method).toBe("POST");
    const form = String(post.body);
    expect(form).toContain(`name="file"`);
    expect(form).toContain('{"epochs":2,"target":"rul","cycle_s":60,"alert_below_s":86400}');

    await userEvent.click(screen.getByRole("button", { name: "Activate maintenance version 3" }));
    expect(await screen.findByTestId("maintenance-message")).toHaveTextContent("Maintenance version 3 now predicts for press-1");
  });
});
