import { type Page, expect, test } from "@playwright/test";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { login, noSeriousA11yViolations, shot, token } from "./helpers";

// Predictive maintenance against the real service: a machine whose sensors are named like a run-to-failure
// history's columns; an engineer uploads the history in the dashboard, follows the training job and activates the
// RUL model; readings of one unit of the history arrive (a cycle per minute); the service's maintenance watcher
// predicts, the section shows RUL with its interval live and the alert under the threshold; an operator records
// maintenance done (confirmed in a dialog) and the maintenance alert closes.
test.describe.configure({ mode: "serial" });

const RUN = Date.now().toString(36);
const LINE = `engines-${RUN}`;
const MACHINE = `engine-${RUN}`;
const HELPER = path.resolve(import.meta.dirname, "maintenance_history.py");
const HISTORY = path.join(tmpdir(), `linewatch-history-${RUN}.csv`);
const READINGS = path.join(tmpdir(), `linewatch-readings-${RUN}.json`);

function helper(...args: string[]) {
  const r = spawnSync("python", [HELPER, ...args], { encoding: "utf8", timeout: 120_000 });
  expect(r.status, r.stderr).toBe(0);
}

async function openMachine(page: Page) {
  await page.goto(`/#/machines/${MACHINE}`);
  await expect(page.getByTestId("machine-name")).toHaveText(MACHINE);
  await expect(page.getByTestId("maintenance")).toBeVisible();
}

test("maintenance: train on an uploaded history, activate, RUL live with its interval, maintenance done", async ({ page, browser, request }) => {
  test.setTimeout(600_000);
  helper("history", HISTORY);
  helper("readings", READINGS);
  const data = JSON.parse(readFileSync(READINGS, "utf8")) as { columns: string[]; cycles: number; time: number[]; values: Record<string, number[]> };
  const eng = await token(request, "engineer");
  const h = { Authorization: `Bearer ${eng}` };
  expect((await request.post("/api/v1/lines", { headers: h, data: { name: LINE } })).status()).toBe(201);
  const created = await request.post("/api/v1/machines", {
    headers: h,
    data: { name: MACHINE, line: LINE, type: "engine", sensors: data.columns.map((name) => ({ name })) },
  });
  expect(created.status(), await created.text()).toBe(201);

  // the engineer trains from the dashboard
  await login(page, "engineer");
  await openMachine(page);
  await expect(page.getByTestId("maintenance-headline")).toContainText("No active maintenance model");
  await noSeriousA11yViolations(page, "machine maintenance (no model)");
  const form = page.getByTestId("maintenance-train-form");
  await form.locator('input[type="file"]').setInputFiles(HISTORY);
  await form.getByLabel("Seconds per cycle").fill("60");
  await form.getByLabel("Alert under (hours)").fill("0.2");
  await form.getByLabel("Engine parameters (JSON)").fill('{"window": 10, "folds": 2, "epochs": 2, "tree_iter": 20, "channels": 8}');
  await form.getByRole("button", { name: "Train" }).click();
  await expect(page.getByTestId("maintenance-progress")).toBeVisible();
  await expect(page.getByTestId("maintenance-train-done")).toBeVisible({ timeout: 300_000 });
  const row = page.getByTestId("maintenance-model-row").first();
  await expect(row).toContainText("RUL");
  await expect(row).toContainText("ready");
  // keyboard: focus the activate button and press Enter
  await row.getByRole("button", { name: /Activate maintenance version/ }).focus();
  await page.keyboard.press("Enter");
  await expect(page.getByTestId("maintenance-message")).toContainText("now predicts");
  await expect(page.getByTestId("maintenance-model")).toContainText("RUL model v1");
  await expect(row).toContainText("active");

  // the machine lives one unit of the history; the watcher predicts each completed cycle (every 10 s)
  const r = await request.post(`/api/v1/machines/${MACHINE}/readings`, { headers: h, data: { time: data.time, values: data.values } });
  expect(r.status(), await r.text()).toBe(200);
  const chart = page.getByTestId("maintenance-chart");
  await expect(chart).toBeVisible({ timeout: 60_000 });
  await expect(async () => expect(Number(await chart.getAttribute("data-points"))).toBeGreaterThanOrEqual(data.cycles - 2)).toPass({ timeout: 60_000 });
  const head = page.getByTestId("maintenance-headline");
  await expect(head).toHaveAttribute("data-kind", "rul");
  await expect(head).toContainText(/RUL [\d.]+ cycles/);
  await expect(head).toHaveAttribute("data-alerting", "yes"); // the unit's end: the lower bound under 12 minutes
  await expect(page.getByTestId("machine-alert-row").getByTestId("alert-kind").first()).toHaveText("maintenance", { timeout: 30_000 });
  await page.getByTestId("maintenance-unit").getByText("cycles", { exact: true }).click();
  await expect(chart.getByRole("img")).toHaveAttribute("aria-label", /in cycles/);
  await noSeriousA11yViolations(page, "machine maintenance (predictions)");
  await shot(page, "maintenance-rul");

  // an operator records maintenance done, confirmed in a dialog; the maintenance alert closes
  const ctx = await browser.newContext();
  const op = await ctx.newPage();
  await login(op, "operator");
  await openMachine(op);
  await expect(op.getByTestId("maintenance-train-form")).toHaveCount(0);
  await op.getByRole("button", { name: "Maintenance done…" }).click();
  const dialog = op.getByRole("dialog", { name: `Record maintenance on ${MACHINE}` });
  await expect(dialog).toBeVisible();
  await noSeriousA11yViolations(op, "maintenance done dialog");
  await op.keyboard.press("Escape");
  await expect(dialog).toBeHidden();
  await op.getByRole("button", { name: "Maintenance done…" }).click();
  await dialog.getByRole("button", { name: "Record maintenance" }).click();
  await expect(op.getByTestId("maintenance-message")).toContainText("Maintenance recorded");
  await expect(op.getByTestId("maintenance-model")).toContainText("life since");
  const alerts = await request.get(`/api/v1/alerts`, { headers: h, params: { machine: MACHINE } });
  const list = (await alerts.json()) as { kind: string; status: string }[];
  expect(list.filter((a) => a.kind === "maintenance").map((a) => a.status)).toEqual(["closed"]);
  await ctx.close();
});
