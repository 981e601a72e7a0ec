import { type APIRequestContext, expect, test } from "@playwright/test";
import { login, noSeriousA11yViolations, shot, token } from "./helpers";

// The digital twin against the real service: an engineer uploads a line model in the dashboard (a bad one first:
// the service's problem shown at its path), the plant's state events arrive through the API, and the line map, the
// state timeline, OEE with its losses and a small what-if run render, with axe checks; a live event recolours the
// map; a viewer reads but cannot edit or run.
test.describe.configure({ mode: "serial" });

const RUN = Date.now().toString(36);
const LINE = `twin-${RUN}`;
const MODEL = {
  name: LINE,
  machines: [
    { name: "cutter", operation: "cut", cycle_time_s: 4, failures: [{ cause: "blade jam", mtbf_h: 2, mttr_min: 5 }] },
    { name: "welder", operation: "weld", cycle_time_s: 5 },
    { name: "packer", operation: "pack", cycle_time_s: 3 },
  ],
  buffers: [{ name: "weld infeed", before: "weld", capacity: 10 }],
  inspections: [{ machine: "packer", station: "pack-camera", defect_rate: 0.02 }],
};
const path = (p: string) => `/api/v1/lines/${encodeURIComponent(LINE)}${p}`;

async function events(request: APIRequestContext, auth: string, items: object[]) {
  const r = await request.post(path("/events"), { headers: { Authorization: `Bearer ${auth}` }, data: items });
  expect(r.status(), await r.text()).toBe(202);
  const body = await r.json();
  expect(body.rejected, JSON.stringify(body.rejected)).toEqual([]);
}

test("twin: model upload with its errors, line map live, state timeline, OEE, what-if", async ({ page, request }) => {
  test.setTimeout(240_000);
  const auth = await token(request, "engineer");
  const h = { Authorization: `Bearer ${auth}` };
  expect((await request.post("/api/v1/lines", { headers: h, data: { name: LINE } })).ok()).toBeTruthy();

  await login(page, "engineer");
  await page.getByRole("link", { name: "Line", exact: true }).click();
  await page.goto(`/#/line/${encodeURIComponent(LINE)}/map`);
  await expect(page.getByTestId("no-model")).toBeVisible();
  await noSeriousA11yViolations(page, "line (no model)");

  // the model: a bad one is refused with its path, then the good one is saved
  await page.getByTestId("line-view-model").click();
  await expect(page.getByTestId("model-empty")).toBeVisible();
  const bad = { ...MODEL, machines: [{ ...MODEL.machines[0], cycle_time_s: -1 }, ...MODEL.machines.slice(1)] };
  await page.getByTestId("model-text").fill(JSON.stringify(bad));
  await page.getByTestId("model-save").click();
  await expect(page.getByTestId("model-error").first()).toContainText("machines[0]");
  await noSeriousA11yViolations(page, "line model (errors)");
  await page.getByTestId("model-text").fill(JSON.stringify(MODEL));
  await page.getByTestId("model-save").click();
  await expect(page.getByTestId("model-message")).toContainText("Saved: version 1");

  // the plant's events of the last hour
  const t0 = Date.now() - 50 * 60_000;
  const at = (min: number) => new Date(t0 + min * 60_000).toISOString();
  await events(request, auth, [
    { machine: "cutter", state: "running", ts: at(0) },
    { machine: "welder", state: "starved", ts: at(0) },
    { machine: "packer", state: "starved", ts: at(0) },
    { machine: "welder", state: "running", ts: at(1) },
    { machine: "packer", state: "running", ts: at(2) },
    { machine: "cutter", state: "down", reason: "blade jam", ts: at(20), good: 290 },
    { machine: "welder", state: "starved", ts: at(22), good: 250 },
    { machine: "cutter", state: "running", ts: at(30) },
    { machine: "welder", state: "running", ts: at(31) },
    { buffer: "weld infeed", level: 4, ts: at(40) },
    { machine: "packer", state: "running", ts: at(45), good: 500, defective: 8 },
  ]);

  // the line map
  await page.getByTestId("line-view-map").click();
  const cutter = page.locator('[data-testid=map-machine][data-machine="cutter"]');
  await expect(cutter).toHaveAttribute("data-state", "running");
  await expect(page.locator('[data-testid=map-machine][data-machine="packer"]')).toHaveAttribute("aria-label", /packer: running .*500 good, 8 defective/);
  await expect(page.locator('[data-testid=map-buffer][data-buffer="weld infeed"]')).toHaveAttribute("aria-label", "buffer weld infeed: 4 / 10");
  await expect(page.getByTestId("state-legend")).toContainText("maintenance");
  await noSeriousA11yViolations(page, "line map");
  await shot(page, "twin-map");
  // live: the cutter goes down, the map follows without a reload
  await events(request, auth, [{ machine: "cutter", state: "down", reason: "blade jam", good: 10 }]);
  await expect(cutter).toHaveAttribute("data-state", "down");
  await expect(page.locator('[data-testid=map-row][data-machine="cutter"]')).toContainText("blade jam");

  // the state timeline, from a machine's box
  await cutter.click();
  await expect(page.getByTestId("timeline-view")).toBeVisible();
  await expect(page.getByTestId("timeline-machine")).toHaveValue("cutter");
  await expect(page.locator("[data-testid=timeline-segment][data-state=down]").first()).toBeVisible();
  await expect(page.getByTestId("timeline-row")).toHaveCount(1);
  await page.getByTestId("timeline-machine").click();
  await page.getByRole("option", { name: "All machines" }).click();
  await expect(page.getByTestId("timeline-row")).toHaveCount(3);
  const chart = page.getByRole("application", { name: /State timeline/ });
  await chart.focus();
  await page.keyboard.press("ArrowRight");
  await expect(page.getByTestId("timeline-focus")).toContainText("cutter: ");
  await expect(page.locator('[data-testid=timeline-row][data-machine="cutter"]')).toContainText("%");
  await noSeriousA11yViolations(page, "state timeline");
  await shot(page, "twin-timeline");

  // OEE over the last 24 h
  await page.getByTestId("line-view-oee").click();
  await page.getByText("24 h", { exact: true }).click();
  await expect(page.getByTestId("oee-line-oee")).toHaveText(/\d+\.\d %/);
  await expect(page.getByTestId("loss-table")).toContainText("Downtime: blade jam");
  await expect(page.getByTestId("oee-machines").getByTestId("oee-row")).toHaveCount(3);
  await noSeriousA11yViolations(page, "OEE");
  await shot(page, "twin-oee");

  // what-if: a second welder, 2 replications of 2 hours
  await page.getByTestId("line-view-whatif").click();
  await page.getByTestId("scenario-name").fill("second welder");
  await page.getByLabel("Machines like welder to add").fill("1");
  await page.getByLabel("Capacity of weld infeed").fill("20");
  await expect(page.getByTestId("scenario-overrides")).toContainText('"like": "welder"');
  await page.getByLabel("Hours").fill("2");
  await page.getByLabel("Replications").fill("2");
  await page.getByTestId("sim-run").click();
  await expect(page.getByTestId("sim-progress")).toBeVisible();
  await expect(page.getByTestId("comparison")).toBeVisible({ timeout: 120_000 });
  await expect(page.getByTestId("compare-throughput_per_h")).toBeVisible();
  await expect(page.getByTestId("compare-utilisation").locator("[data-bottleneck=true]").first()).toBeVisible();
  await expect(page.getByTestId("comparison-table")).toContainText("welder 2");
  await noSeriousA11yViolations(page, "what-if");
  await shot(page, "twin-whatif");
});

test("twin: a viewer reads the map, the model and earlier simulations, and edits nothing", async ({ page }) => {
  await login(page, "viewer");
  await page.goto(`/#/line/${encodeURIComponent(LINE)}/map`);
  await expect(page.getByTestId("line-map")).toBeVisible();
  await page.getByTestId("line-view-model").click();
  await expect(page.getByTestId("model-json")).toContainText('"welder"');
  await expect(page.getByTestId("model-save")).toHaveCount(0);
  await page.getByTestId("line-view-whatif").click();
  await expect(page.getByTestId("whatif-viewer")).toBeVisible();
  await expect(page.getByTestId("sim-run")).toHaveCount(0);
  await expect(page.getByTestId("simulation-list")).toContainText("second welder");
  await noSeriousA11yViolations(page, "what-if (viewer)");
});

test("twin: an engineer runs a schedule's plan on the line and sees how it holds up", async ({ page, request }) => {
  test.setTimeout(120_000);
  const h = { Authorization: `Bearer ${await token(request, "engineer")}` };
  const jobs = [0, 1, 2].map((j) => ({
    name: `J${j}`,
    due: 20,
    operations: [
      { machine: "cutter", duration: 4 },
      { machine: "welder", duration: 5 },
      { machine: "packer", duration: 3 },
    ],
  }));
  const name = `plan-${RUN}`;
  const made = await request.post("/api/v1/schedules", { headers: h, data: { name, instance: { machines: ["cutter", "welder", "packer"], jobs } } });
  expect(made.status(), await made.text()).toBe(201);
  const id = (await made.json()).id;
  expect((await request.post(`/api/v1/schedules/${id}/solve`, { headers: h, data: { solver: "rules" } })).ok()).toBeTruthy();
  await expect.poll(async () => (await (await request.get(`/api/v1/schedules/${id}`, { headers: h })).json()).status, { timeout: 60_000 }).toBe("solved");

  await login(page, "engineer");
  await page.goto(`/#/line/${encodeURIComponent(LINE)}/whatif`);
  await page.getByTestId("sim-schedule").click(); // enabled once the solved schedules are loaded
  await page.getByRole("option", { name: `#${id} ${name}` }).click();
  await page.getByLabel("Replications").fill("3");
  await expect(page.getByTestId("sim-run")).toHaveText("Run the plan");
  await page.getByTestId("sim-run").click();
  await expect(page.getByTestId("plan-result")).toBeVisible({ timeout: 120_000 });
  await expect(page.getByTestId("plan-result")).toContainText(`How schedule #${id} “${name}” holds up on the line`);
  await expect(page.getByTestId("plan-table")).toContainText("Makespan (min)");
  await expect(page.getByTestId("compare-makespan")).toBeVisible();
  await noSeriousA11yViolations(page, "what-if (a schedule's plan)");
  await shot(page, "twin-whatif-plan");
});
