import { act, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, describe, expect, it, vi } from "vitest";
import openapi from "../../openapi.json";
import { DETECTORS } from "../components/MachineModels";
import type { LiveSeries } from "../lib/machines";
import { alert, machine, renderAs, stubFetch } from "../test/machines";
import MachinePage from "./Machine";

// jsdom has no layout and no canvas: the charts' container is 1000 px wide, and a chart is its data in text
vi.mock("@mantine/hooks", async (real) => ({
  ...(await real<typeof import("@mantine/hooks")>()),
  useElementSize: () => ({ ref: { current: null }, width: 1000, height: 0 }),
}));
vi.mock("../components/SensorChart", () => ({
  SensorChart: ({ series, threshold }: { series: LiveSeries; threshold?: number | null }) => (
    <div data-testid={`stub-${series.sensor}`}>
      {series.t.length} buckets, last mean {series.mean.at(-1)}, threshold {String(threshold ?? "none")}
    </div>
  ),
}));

const now = Math.floor(Date.now() / 1000);
function readings(threshold: number | null, scored = true) {
  const t = [now - 120, now - 60];
  return {
    machine: "press-1",
    start: new Date((now - 3600) * 1000).toISOString(),
    end: new Date(now * 1000).toISOString(),
    resolution: "raw",
    step_s: 3,
    threshold,
    series: [
      { sensor: "oil_temp", unit: "°C", t, n: [3, 3], mean: [70, 71], min: [69, 70], max: [71, 72] },
      { sensor: "pressure", unit: "bar", t, n: [3, 3], mean: [3, 3.1], min: [2.9, 3], max: [3.1, 3.2] },
      scored
        ? { sensor: "_score", unit: "", t, n: [3, 3], mean: [0.5, 0.7], min: [0.1, 0.2], max: [1, 1.2] }
        : { sensor: "_score", unit: "", t: [], n: [], mean: [], min: [], max: [] },
    ],
  };
}

const model = {
  id: 4,
  machine: "press-1",
  version: 1,
  method: "stream",
  params: {},
  sensors: ["oil_temp", "pressure"],
  status: "ready",
  metrics: {
    time_steps: 1200,
    readings: 2400,
    alert_rate: 0.0012,
    threshold: 3,
    sensors: [
      { sensor: "oil_temp", readings: 1200, mean: 69.99, std: 0.49, alert_rate: 0.001 },
      { sensor: "pressure", readings: 1200, mean: 3.0, std: 0.05, alert_rate: 0.0014 },
    ],
  },
  source: { start: "2026-12-03T09:00:00Z", end: "2026-12-03T10:00:00Z" },
  job_id: 9,
  created_at: "2026-12-03T10:01:00Z",
  active: false,
};

describe("MachinePage", { timeout: 20_000 }, () => {
  afterEach(() => vi.unstubAllGlobals());

  it("charts each sensor and the score with about one bucket per pixel, appends live values, re-queries a range", async () => {
    const sent = stubFetch({
      "GET /api/v1/machines/press-1": machine({ active_model_id: 4, health: 0.97 }),
      "GET /api/v1/alerts": [alert({ id: 5, status: "closed", closed_at: "2026-12-03T10:01:00Z" })],
      "GET /api/v1/machines/press-1/readings": readings(3),
      "GET /api/v1/machines/press-1/models": [{ ...model, active: true }],
    });
    const { stream } = renderAs("viewer", <MachinePage name="press-1" />);
    expect(await screen.findByTestId("stub-oil_temp")).toHaveTextContent("2 buckets, last mean 71");
    expect(screen.getByTestId("stub-_score")).toHaveTextContent("threshold 3");
    const q = sent.find((s) => s.url.pathname.endsWith("/readings"))!.url.searchParams;
    expect(q.get("points")).toBe("1000");
    expect((Date.parse(q.get("end")!) - Date.parse(q.get("start")!)) / 1000).toBeCloseTo(3600, -1);
    expect(screen.getByTestId("machine-health")).toHaveTextContent("Normal · 97 %");
    expect(screen.getByTestId("machine-alert-row")).toHaveTextContent("#5");

    // a live state: a new bucket per sensor and for the score, the newest value shown, health follows
    act(() =>
      stream.machineStates.forEach((f) =>
        f({ machine: "press-1", line: "L1", time: now, health: 0.42, score: 4.5, values: { oil_temp: 90.5, pressure: 3.2 }, readings: 2, open_alert_id: 6 }),
      ),
    );
    expect(screen.getByTestId("stub-oil_temp")).toHaveTextContent("3 buckets, last mean 90.5");
    expect(screen.getByTestId("stub-_score")).toHaveTextContent("3 buckets, last mean 4.5");
    expect(screen.getAllByTestId("sensor-value")[0]).toHaveTextContent("now 90.5 °C");
    expect(screen.getByTestId("machine-health")).toHaveTextContent("Alerting · 42 %");
    // another machine's state changes nothing
    act(() => stream.machineStates.forEach((f) => f({ machine: "other", line: "L1", time: now, health: 1, score: 0, values: { oil_temp: 1 }, readings: 1, open_alert_id: null })));
    expect(screen.getByTestId("stub-oil_temp")).toHaveTextContent("last mean 90.5");
    // a live alert of this machine joins its history
    act(() => stream.alerts.forEach((f) => f({ change: "opened", alert: alert({ id: 6 }) })));
    expect(screen.getAllByTestId("machine-alert-row").map((r) => r.getAttribute("data-id"))).toEqual(["6", "5"]);

    // a week: asked again over seven days
    await userEvent.click(within(screen.getByTestId("range")).getByText("7 d"));
    await vi.waitFor(() => {
      const last = sent.filter((s) => s.url.pathname.endsWith("/readings")).at(-1)!.url.searchParams;
      expect((Date.parse(last.get("end")!) - Date.parse(last.get("start")!)) / 1000).toBeCloseTo(7 * 86400, -1);
    });
    // a viewer: no training, activation, rollback or editing
    expect(screen.getByTestId("model-metrics")).toHaveTextContent("69.990");
    expect(screen.queryByTestId("train-form")).not.toBeInTheDocument();
    expect(screen.queryByTestId("activate")).not.toBeInTheDocument();
    expect(screen.queryByTestId("rollback")).not.toBeInTheDocument();
    expect(screen.queryByTestId("edit-sensors")).not.toBeInTheDocument();
  }, 20_000);

  it("an engineer trains a version over a time range and follows the job to the end, then activates it", async () => {
    let job = { id: 9, kind: "sensor_train", status: "running", progress: 0.3, message: "warm", params: { machine: "press-1" }, result: null, error: null, created_at: "", started_at: null, finished_at: null };
    let models: unknown[] = [];
    let active: number | null = null;
    const sent = stubFetch({
      "GET /api/v1/machines/press-1": () => machine({ active_model_id: active }),
      "GET /api/v1/alerts": [],
      "GET /api/v1/machines/press-1/readings": readings(null, false),
      "GET /api/v1/machines/press-1/models": () => models,
      "GET /api/v1/jobs": [],
      "POST /api/v1/machines/press-1/models/train": () => job,
      "GET /api/v1/jobs/9": () => job,
      "POST /api/v1/machine-models/4/activate": () => {
        active = 4;
        return machine({ active_model_id: 4 });
      },
    });
    vi.stubGlobal("confirm", () => true);
    const { stream } = renderAs("engineer", <MachinePage name="press-1" />);
    expect(await screen.findByTestId("no-models")).toHaveTextContent("Train one");
    expect(await screen.findByTestId("no-scores")).toHaveTextContent("No active sensor model");
    await userEvent.click(screen.getByTestId("train"));
    expect(await screen.findByTestId("train-progress")).toHaveTextContent("Phase: warm · 30 %");
    const body = sent.find((s) => s.method === "POST")!.body as { start: string; end: string; method: string; params: object };
    expect((Date.parse(body.end) - Date.parse(body.start)) / 86400_000).toBeCloseTo(7, 1); // a week by default
    expect(body.params).toEqual({});
    expect(body.method).toBe("stream"); // the service's default detector
    // progress from the live stream, then the job ends
    act(() => stream.jobs.forEach((f) => f({ ...job, progress: 0.8, message: "save" })));
    expect(screen.getByTestId("train-progress")).toHaveTextContent("Phase: save · 80 %");
    job = { ...job, status: "succeeded", progress: 1, message: "done", result: { machine_model_id: 4, version: 1 } as never };
    models = [model];
    act(() => stream.jobs.forEach((f) => f(job)));
    expect(await screen.findByTestId("train-done")).toHaveTextContent("Version 1 (#4) is ready");
    const row = await screen.findByTestId("model-row");
    expect(row).toHaveTextContent("1200");
    expect(row).toHaveTextContent("0.12 %");
    await userEvent.click(within(row).getByTestId("activate"));
    expect(await screen.findByTestId("models-message")).toHaveTextContent("Version 1 is now active on press-1");
  }, 20_000);

  it("an engineer picks a detector and its parameters; the table names each version's detector", async () => {
    const job = { id: 9, kind: "sensor_train", status: "running", progress: 0.3, message: "warm", params: { machine: "press-1" }, result: null, error: null, created_at: "", started_at: null, finished_at: null };
    const sent = stubFetch({
      "GET /api/v1/machines/press-1": () => machine({ active_model_id: null }),
      "GET /api/v1/alerts": [],
      "GET /api/v1/machines/press-1/readings": readings(null, false),
      "GET /api/v1/machines/press-1/models": [{ ...model, method: "surprise" }],
      "GET /api/v1/jobs": [],
      "POST /api/v1/machines/press-1/models/train": () => job,
      "GET /api/v1/jobs/9": () => job,
    });
    renderAs("engineer", <MachinePage name="press-1" />);
    expect(await screen.findByTestId("model-row")).toHaveTextContent("surprise");
    expect(screen.getByRole("textbox", { name: "Threshold" })).toHaveAttribute("placeholder", "default 3");
    await userEvent.click(screen.getByRole("textbox", { name: "Detector" }));
    await userEvent.click(await screen.findByRole("option", { name: /^Mahalanobis/ }));
    expect(screen.getByRole("textbox", { name: "False-alarm rate" })).toHaveAttribute("placeholder", "default 0.01");
    expect(screen.queryByRole("textbox", { name: "Threshold" })).not.toBeInTheDocument();
    await userEvent.click(screen.getByRole("textbox", { name: "Detector" }));
    await userEvent.click(await screen.findByRole("option", { name: /^Surprise/ }));
    expect(screen.getByRole("textbox", { name: "Threshold" })).toHaveAttribute("placeholder", "default 0.5");
    await userEvent.type(screen.getByRole("textbox", { name: "Threshold" }), "0.6");
    await userEvent.click(screen.getByTestId("train"));
    await waitFor(() => expect(sent.some((s) => s.method === "POST")).toBe(true));
    expect(sent.find((s) => s.method === "POST")!.body).toMatchObject({ method: "surprise", params: { threshold: 0.6 } });
  }, 20_000);

  it("offers every detector the API trains a machine model with", () => {
    const body = openapi.paths["/api/v1/machines/{name}/models/train"].post.requestBody.content["application/json"].schema;
    const schemas = openapi.components.schemas as unknown as Record<string, { properties: { method: { const: string } } }>;
    const methods = body.oneOf.map((o) => schemas[o.$ref.split("/").at(-1)!].properties.method.const);
    expect(methods).toContain("knn");
    expect(DETECTORS.map((d) => d.value).sort()).toEqual([...methods].sort());
  });

  it("a table detector of the sensor engine other than Mahalanobis, with its own parameter", async () => {
    const job = { id: 9, kind: "sensor_train", status: "running", progress: 0.3, message: "fit", params: { machine: "press-1" }, result: null, error: null, created_at: "", started_at: null, finished_at: null };
    const sent = stubFetch({
      "GET /api/v1/machines/press-1": () => machine({ active_model_id: null }),
      "GET /api/v1/alerts": [],
      "GET /api/v1/machines/press-1/readings": readings(null, false),
      "GET /api/v1/machines/press-1/models": [],
      "GET /api/v1/jobs": [],
      "POST /api/v1/machines/press-1/models/train": () => job,
      "GET /api/v1/jobs/9": () => job,
    });
    renderAs("engineer", <MachinePage name="press-1" />);
    await userEvent.click(await screen.findByRole("textbox", { name: "Detector" }));
    await userEvent.click(await screen.findByRole("option", { name: /kNN/ }));
    expect(screen.getByTestId("detector-hint")).toHaveTextContent("sooner than Mahalanobis");
    expect(screen.getByRole("textbox", { name: "Neighbours" })).toHaveAttribute("placeholder", "default 10");
    await userEvent.type(screen.getByRole("textbox", { name: "Neighbours" }), "5");
    await userEvent.click(screen.getByTestId("train"));
    await waitFor(() => expect(sent.some((s) => s.method === "POST")).toBe(true));
    expect(sent.find((s) => s.method === "POST")!.body).toMatchObject({ method: "knn", params: { n_neighbors: 5 } });
  }, 20_000);

  it("an engineer imports a model fitted with `linewatch sensors fit` and sees it selected", async () => {
    const imported = { ...model, id: 7, version: 2, method: "pca", metrics: { threshold: 12.5, imported: true, sensors: [{ sensor: "oil_temp" }, { sensor: "pressure" }] }, source: { file: "m.zip", imported: true } };
    let models: unknown[] = [model];
    const sent = stubFetch({
      "GET /api/v1/machines/press-1": () => machine({ active_model_id: 4 }),
      "GET /api/v1/alerts": [],
      "GET /api/v1/machines/press-1/readings": readings(3),
      "GET /api/v1/machines/press-1/models": () => models,
      "GET /api/v1/jobs": [],
      "GET /api/v1/machine-models/7/files": { zip: true },
      "POST /api/v1/machines/press-1/models/import": () => {
        models = [imported, model];
        return imported;
      },
    });
    renderAs("engineer", <MachinePage name="press-1" />);
    await screen.findByTestId("model-row");
    expect(screen.getByTestId("import")).toBeDisabled();
    const input = screen.getByTestId("train-form").querySelector('input[type="file"]') as HTMLInputElement;
    await userEvent.upload(input, new File([new Uint8Array([80, 75, 3, 4])], "m.zip", { type: "application/zip" }));
    await userEvent.click(screen.getByTestId("import"));
    expect(await screen.findByTestId("models-message")).toHaveTextContent("Imported as version 2 (pca)");
    const post = sent.find((x) => x.method === "POST")!;
    expect(post.url.pathname).toBe("/api/v1/machines/press-1/models/import");
    expect(String(post.body)).toContain('name="file"');
    await waitFor(() => expect(screen.getAllByTestId("model-row")).toHaveLength(2));
    expect(screen.getByTestId("model-metrics")).toHaveTextContent("Version 2");
    expect(screen.getByTestId("model-metrics")).toHaveTextContent("imported from m.zip, fitted elsewhere with threshold 12.5000; this machine had no readings");
    // its folder downloads as a zip
    URL.createObjectURL = vi.fn(() => "blob:x");
    URL.revokeObjectURL = vi.fn();
    await userEvent.click(screen.getByTestId("download-model"));
    await waitFor(() => expect(URL.createObjectURL).toHaveBeenCalled());
    expect(sent.at(-1)!.url.pathname).toBe("/api/v1/machine-models/7/files");
  }, 20_000);

  it("an engineer imports a table model from the model registry and publishes a version to it", async () => {
    const fromRegistry = { ...model, id: 8, version: 2, method: "pca", metrics: { threshold: 3.1, imported: true, checked_on_time_steps: 500, time_steps: 500, sensors: [{ sensor: "oil_temp", readings: 500, mean: 70, std: 1, alert_rate: 0.004 }] }, source: { registry: { ref: "press-oil@production", name: "press-oil", version: 4 } } };
    let models: unknown[] = [model];
    const sent = stubFetch({
      "GET /api/v1/machines/press-1": () => machine({ active_model_id: 4 }),
      "GET /api/v1/alerts": [],
      "GET /api/v1/machines/press-1/readings": readings(3),
      "GET /api/v1/machines/press-1/models": () => models,
      "GET /api/v1/jobs": [],
      "POST /api/v1/machines/press-1/models/registry-import": () => {
        models = [fromRegistry, model];
        return fromRegistry;
      },
      "POST /api/v1/machine-models/8/publish": { name: "press-oil-line2", version: 1, run_id: "r", alias: null },
    });
    renderAs("engineer", <MachinePage name="press-1" />);
    await screen.findByTestId("model-row");
    expect(screen.queryByTestId("publish")).not.toBeInTheDocument(); // a stream model is a checkpoint, not for the registry
    await userEvent.type(screen.getByRole("textbox", { name: "Or from the model registry" }), "press-oil@");
    expect(screen.getByTestId("registry-import")).toBeDisabled(); // not a reference yet
    await userEvent.type(screen.getByRole("textbox", { name: "Or from the model registry" }), "production");
    await userEvent.click(screen.getByTestId("registry-import"));
    expect(await screen.findByTestId("models-message")).toHaveTextContent("Imported as version 2 (pca)");
    expect(sent.find((x) => x.method === "POST")!.body).toEqual({ ref: "press-oil@production" });
    await waitFor(() => expect(screen.getByTestId("model-metrics")).toHaveTextContent("imported from press-oil v4 (registry)"));
    expect(screen.getByTestId("model-metrics")).toHaveTextContent("per sensor, on this machine's newest readings");
    expect(screen.getByTestId("model-metrics")).toHaveTextContent("run over this machine's newest 500 time steps");
    expect(screen.getByTestId("sensor-metrics")).toHaveTextContent("0.40 %");
    await userEvent.type(screen.getByTestId("publish-name"), "press-oil-line2");
    await userEvent.click(screen.getByTestId("publish"));
    await waitFor(() => expect(screen.getByTestId("models-message")).toHaveTextContent("Published as version 1 of press-oil-line2"));
    expect(sent.find((x) => x.url.pathname === "/api/v1/machine-models/8/publish")!.body).toEqual({ name: "press-oil-line2" });
  }, 20_000);
});
