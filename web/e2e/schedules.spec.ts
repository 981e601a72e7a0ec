import { expect, test } from "@playwright/test";
import { login, noSeriousA11yViolations, shot, token } from "./helpers";

// Schedules against the real service: an engineer pastes a JSPLIB instance (ft06) in the dashboard, solves it with
// CP-SAT watching the incumbent and bound, reads the Gantt (keyboard and hover) and KPIs, activates the plan,
// replans after a machine goes down and sees what changed; a viewer reads but cannot change anything. A 100 jobs ×
// 10 machines plan renders quickly.
test.describe.configure({ mode: "serial" });

const RUN = Date.now().toString(36);
const FT06 = `# ft06 (Fisher and Thompson), 6 jobs x 6 machines, optimum 55
6 6
2 1 0 3 1 6 3 7 5 3 4 6
1 8 2 5 4 10 5 10 0 10 3 4
2 5 3 4 5 8 0 9 1 1 4 7
1 5 0 5 2 5 3 3 4 8 5 9
2 9 1 3 4 5 5 4 0 3 3 1
1 3 3 3 5 9 0 10 4 4 2 1
`;

test("schedules: create, solve with progress, Gantt and KPIs, activate, replan after a machine goes down", async ({ page, browser }) => {
  test.setTimeout(150_000);
  await login(page, "engineer");
  await page.getByRole("link", { name: "Schedules", exact: true }).click();
  const form = page.getByTestId("schedule-create");
  await form.getByLabel("Name", { exact: true }).fill(`ft06-${RUN}`);
  await form.getByTestId("schedule-text").fill(FT06);
  await form.getByRole("button", { name: "Create" }).click();
  await expect(page.getByTestId("schedule-title")).toContainText(`ft06-${RUN}`);
  await expect(page.getByTestId("schedule-unsolved")).toBeVisible();
  await noSeriousA11yViolations(page, "schedules (new)");

  await page.getByLabel("Time limit (s)").first().fill("5");
  await page.getByRole("button", { name: "Solve" }).click();
  await expect(page.getByTestId("schedule-solve-progress")).toBeVisible();
  await expect(page.getByTestId("kpi-makespan")).toHaveText("55", { timeout: 60_000 });
  await expect(page.getByTestId("schedule-status")).toHaveText("solved");
  await expect(page.getByTestId("convergence-now")).toContainText("incumbent");
  await expect(page.getByTestId("kpi-gap")).toHaveText(/0(\.00)? %/);
  await expect(page.getByTestId("gantt")).toHaveAttribute("data-operations", "36");
  await expect(page.getByTestId("utilisation").getByRole("row")).toHaveCount(7);

  // keyboard: Tab into the chart, arrows move between operations, each read out
  const chart = page.getByRole("application", { name: /Plan of ft06/ });
  await chart.focus();
  await expect(page.getByTestId("gantt-focus")).toContainText(/operation \d on M0: \d+ to \d+/);
  await page.keyboard.press("ArrowRight");
  await page.keyboard.press("ArrowDown");
  await expect(page.getByTestId("gantt-tip")).toContainText(/on M1:/);
  // hover shows an operation too
  const box = (await page.getByTestId("gantt").locator("canvas").boundingBox())!;
  await page.mouse.move(box.x + 3, box.y + 13);
  await expect(page.getByTestId("gantt-tip")).toContainText("operation");
  await noSeriousA11yViolations(page, "schedules (solved)");
  await shot(page, "schedule-solved");

  await page.getByRole("button", { name: "Activate" }).click();
  await expect(page.getByTestId("schedule-active")).toBeVisible();

  // machine 2 goes down at 10 until 30: a new schedule, what changed
  await page.getByTestId("replan-machine").click();
  await page.getByRole("option", { name: "M2", exact: true }).click();
  await page.getByLabel("Down from (time)").fill("10");
  await page.getByLabel("Until (optional)").fill("30");
  await page.getByLabel("Time limit (s)").last().fill("3");
  await page.getByRole("button", { name: "Replan" }).click();
  await expect(page.getByTestId("schedule-changes")).toBeVisible({ timeout: 60_000 });
  await expect(page.getByTestId("schedule-changes")).toContainText("went down at 10 until 30");
  await expect(page.getByTestId("schedule-changes-summary")).toContainText("shifted in time");
  await expect(page.getByTestId("schedule-row")).toHaveCount(2, { timeout: 10_000 }).catch(() => undefined);
  await page.getByTestId("parent-plan").locator("summary").click();
  await expect(page.getByTestId("gantt-parent")).toHaveAttribute("data-operations", "36");
  await noSeriousA11yViolations(page, "schedules (replan)");
  await shot(page, "schedule-replan");

  // a viewer reads; no create, solve, replan or activate
  const ctx = await browser.newContext();
  const viewer = await ctx.newPage();
  await login(viewer, "viewer");
  await viewer.getByRole("link", { name: "Schedules", exact: true }).click();
  await viewer.getByRole("link", { name: `ft06-${RUN}` }).first().click();
  await expect(viewer.getByTestId("gantt")).toBeVisible();
  for (const id of ["schedule-create", "schedule-solve", "schedule-replan", "schedule-activate"]) await expect(viewer.getByTestId(id)).toHaveCount(0);
  await ctx.close();
});

test("schedules: a 100 jobs × 10 machines plan draws quickly and stays responsive", async ({ page, request }) => {
  const eng = await token(request, "engineer");
  const h = { Authorization: `Bearer ${eng}` };
  // a random instance: 100 jobs of 10 operations, each on every machine once
  let seed = 7;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const jobs = Array.from({ length: 100 }, (_, j) => {
    const order = [...Array(10).keys()].sort(() => rnd() - 0.5);
    return { name: `job-${j}`, due: 400 + Math.floor(rnd() * 400), operations: order.map((m) => ({ machine: m, duration: 1 + Math.floor(rnd() * 20) })) };
  });
  const created = await request.post("/api/v1/schedules", { headers: h, data: { name: `big-${RUN}`, instance: { format: "linewatch-jobshop", format_version: 1, machines: 10, jobs } } });
  expect(created.status(), await created.text()).toBe(201);
  const sid = (await created.json()).id;
  const job = await request.post(`/api/v1/schedules/${sid}/solve`, { headers: h, data: { solver: "rules" } });
  expect(job.status(), await job.text()).toBe(202);
  await expect(async () => expect((await (await request.get(`/api/v1/schedules/${sid}`, { headers: h })).json()).status).toBe("solved")).toPass({ timeout: 60_000 });

  await login(page, "viewer");
  const t0 = Date.now();
  await page.goto(`/#/schedules/${sid}`);
  await expect(page.getByTestId("gantt")).toHaveAttribute("data-operations", "1000");
  const shown = Date.now() - t0;
  expect(shown, "the plan page with a 1000-operation Gantt shows within 5 s").toBeLessThan(5000);
  await expect(page.getByTestId("kpi-late")).toContainText("of 100");
  // moving the pointer over the chart (a redraw each time) stays fast
  const box = (await page.getByTestId("gantt").locator("canvas").boundingBox())!;
  const m0 = Date.now();
  for (let i = 0; i < 40; i++) await page.mouse.move(box.x + (box.width * i) / 40, box.y + box.height / 2);
  expect(Date.now() - m0, "40 hover moves").toBeLessThan(4000);
  await noSeriousA11yViolations(page, "schedules (100 × 10)");
  await shot(page, "schedule-large");
});
