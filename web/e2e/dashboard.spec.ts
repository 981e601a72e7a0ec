import { expect, test } from "@playwright/test";
import { readFileSync } from "node:fs";
import { inspect, login, noSeriousA11yViolations, samples, shot, token, trainImages } from "./helpers";

// One story through the dashboard against the real service, in order (one worker): each test builds on the
// state the earlier ones left (inspections sent, reviews saved, a model trained).
test.describe.configure({ mode: "serial" });

test("login page: wrong password, then signed in with name and role in the header", async ({ page }) => {
  await page.goto("/");
  await expect(page.getByRole("button", { name: "Sign in" })).toBeVisible();
  await noSeriousA11yViolations(page, "login");
  await shot(page, "01-login");
  await page.getByLabel("User name").fill("operator");
  await page.getByLabel("Password").fill("wrong");
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByRole("alert")).toContainText("Wrong user name or password");
  await page.getByLabel("Password").fill("operator-password");
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByTestId("user-name")).toHaveText("operator");
  await expect(page.getByTestId("user-role")).toHaveText("operator");
  // an operator sees no Train or Admin
  await expect(page.getByRole("link", { name: "Review queue" })).toBeVisible();
  await expect(page.getByRole("link", { name: "Train" })).toHaveCount(0);
  await expect(page.getByRole("link", { name: "Admin" })).toHaveCount(0);
});

test("live line: an inspection sent through the API arrives, counters move, the connection banner shows a drop and the return", async ({
  page,
  request,
}) => {
  // the live socket goes through a route we can cut, as a network drop would
  let cut: (() => Promise<void>) | null = null;
  await page.routeWebSocket(/\/api\/v1\/events/, (ws) => {
    const server = ws.connectToServer();
    cut = async () => {
      await ws.close({ code: 4000, reason: "network drop" });
      await server.close();
    };
  });
  await login(page, "operator");
  await expect(page.getByTestId("live-state")).toHaveText("● Live");
  await noSeriousA11yViolations(page, "live (before any inspection)");
  const auth = await token(request, "operator");
  const sent = await inspect(request, auth, "line1", [samples("defect")[0], samples("good")[0]]);
  const rows = page.getByTestId("inspection-row");
  await expect(rows.first()).toHaveAttribute("data-id", String(sent[1].id)); // newest first
  await expect(rows.nth(1)).toHaveAttribute("data-id", String(sent[0].id));
  const fails = sent.filter((x) => x.verdict === "anomalous").length;
  await expect(page.getByTestId("count-fail")).toHaveText(String(fails));
  await expect(page.getByTestId("count-pass")).toHaveText(String(2 - fails));
  // more, so the chart and the list have something to show
  let last = sent;
  for (let i = 0; i < 3; i++) last = await inspect(request, auth, "line1", [samples("defect")[i + 1], samples("good")[i + 1]]);
  await expect(rows.first()).toHaveAttribute("data-id", String(last[1].id));
  await expect(page.getByTestId("count-pass").or(page.getByTestId("count-fail")).first()).not.toHaveText("0");
  await page.waitForTimeout(500);
  await noSeriousA11yViolations(page, "live");
  await shot(page, "02-live");

  await cut!();
  await expect(page.getByTestId("connection-lost")).toBeVisible();
  await shot(page, "03-live-connection-lost");
  // it reconnects by itself (backoff); no reload
  await expect(page.getByTestId("connection-back")).toBeVisible({ timeout: 15_000 });
  await expect(page.getByTestId("connection-lost")).toHaveCount(0);
  const late = await inspect(request, auth, "line1", [samples("good")[5]]);
  await expect(rows.first()).toHaveAttribute("data-id", String(late[0].id));

  // the counters are the line's, from the service: after a reload they are what /api/v1/stats says, not 0
  await page.reload();
  const since = new Date(Date.now() - 3600_000).toISOString();
  const stats = await (await request.get(`/api/v1/stats?since=${encodeURIComponent(since)}`, { headers: { Authorization: `Bearer ${auth}` } })).json();
  expect(stats.parts).toBeGreaterThan(0);
  await expect(page.getByTestId("count-fail")).toHaveText(String(stats.anomalous));
  await expect(page.getByTestId("count-pass")).toHaveText(String(stats.good));
  await expect(page.getByTestId("fail-rate")).toHaveText(`${((100 * stats.anomalous) / stats.parts).toFixed(1)} %`);
  // and the Prometheus counters of this (fresh) service count the same parts, repeats apart
  const metrics = (await (await request.get("/metrics")).text()).split("\n");
  const counted = (verdict: string) =>
    metrics.filter((l) => l.startsWith("linewatch_inspections_total{") && l.includes(`verdict="${verdict}"`)).reduce((n, l) => n + Number(l.split(" ").at(-1)), 0);
  expect([counted("good"), counted("anomalous")]).toEqual([stats.good, stats.anomalous]);
  // throughput over a stated window, parts ÷ the time the line actually ran in it (the story started minutes ago)
  await expect(page.getByTestId("throughput")).toHaveText(/^\d+\.\d \/ s$/);
  await expect(page.getByTestId("throughput-hint")).toContainText(`${stats.parts} parts in`);
  const [value, hint] = await page.evaluate(() =>
    ["throughput", "throughput-hint"].map((id) => document.querySelector(`[data-testid="${id}"]`)!.textContent!),
  );
  const [parts, covered] = hint.match(/(\d+) parts in ([\d.]+) s/)!.slice(1).map(Number);
  expect(Math.abs(Number(value.split(" ")[0]) - parts / covered)).toBeLessThan(0.06 + (0.6 * parts) / covered ** 2); // rounding

  // one station chosen: its drift watch, from the service (a handful of parts: too few to compare yet)
  await page.getByTestId("station-select").click();
  await page.getByRole("option", { name: "line1" }).click();
  await expect(page.getByTestId("drift-quiet")).toContainText("Drift watch: not enough parts yet");
  await expect(page.getByTestId("drift-quiet")).toContainText("too few scores to compare");
  // its trend on request: the parts' scores and brightness over time, drawn
  await page.getByTestId("drift-trend-toggle").click();
  await expect(page.getByTestId("drift-trend").locator("canvas").first()).toBeVisible();
  await expect(page.getByTestId("drift-trend")).toContainText("median brightness of the photos");

  // tablet width
  await page.setViewportSize({ width: 820, height: 1180 });
  await noSeriousA11yViolations(page, "live (tablet)");
  await shot(page, "04-live-tablet");
});

test("inspection detail: image with heatmap and regions, review with the keyboard", async ({ page, request }) => {
  const auth = await token(request, "operator");
  const [x] = await inspect(request, auth, "line1", [samples("defect")[2]]);
  await login(page, "operator");
  await page.getByTestId("inspection-row").first().click();
  await expect(page).toHaveURL(new RegExp(`#/inspections/${x.id}$`));
  const heat = page.getByTestId("heatmap");
  await expect(heat).toBeVisible();
  expect(await heat.evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth > 0)).toBeTruthy();
  await expect(page.getByTestId("normalized-score")).toContainText("threshold 0.500");
  // the same image was sent on the live page before: the service flags the repeat, the page says so
  await expect(page.getByTestId("duplicate-of")).toContainText("exact copy");
  await noSeriousA11yViolations(page, "inspection detail");
  await shot(page, "05-inspection");
  await page.keyboard.press("h"); // heatmap off
  await expect(heat).toHaveCount(0);
  await page.keyboard.press("h");
  await expect(page.getByTestId("heatmap")).toBeVisible();
  await page.keyboard.press("n");
  await page.keyboard.type("rim checked under the lamp");
  await page.keyboard.press("Control+Enter"); // save: the model's verdict confirmed, with a note
  await expect(page.getByTestId("review-done")).toContainText("confirmed");
  // the review stays on the page: who, the verdict that counts, the note
  const history = page.getByTestId("review-history");
  await expect(history).toContainText("operator");
  await expect(history).toContainText("rim checked under the lamp");
  await expect(page.getByTestId("review-outcome").first()).toHaveText("confirmed");
  await page.reload();
  await expect(page.getByTestId("review-history")).toContainText("rim checked under the lamp");
  const got = await request.get(`/api/v1/inspections/${x.id}`, { headers: { Authorization: `Bearer ${auth}` } });
  expect((await got.json()).reviewed).toBe(true);
  await page.setViewportSize({ width: 820, height: 1180 });
  await shot(page, "06-inspection-tablet");
});

test("review queue: uncertain first, each review moves on without the mouse", async ({ page }) => {
  await login(page, "operator");
  await page.goto("/#/review");
  const count = page.getByTestId("queue-count");
  await expect(count).toContainText("to review");
  const before = parseInt((await count.textContent())!, 10);
  expect(before).toBeGreaterThan(2);
  await expect(page.getByTestId("heatmap")).toBeVisible();
  await noSeriousA11yViolations(page, "review queue");
  await shot(page, "07-review-queue");
  const first = await page.locator(".lw-row.selected").getAttribute("data-id");
  await page.keyboard.press("o"); // overturn: saved, next one selected
  await expect(count).toContainText(`${before - 1} to review`);
  await expect(page.locator(".lw-row.selected")).not.toHaveAttribute("data-id", first!);
  await page.keyboard.press("3"); // defective, defect type "chip"
  await page.keyboard.press("n");
  await page.keyboard.type("edge chipped");
  await page.keyboard.press("Control+Enter");
  await expect(count).toContainText(`${before - 2} to review`);
});

test("defect search: similar past defects, a suggestion accepted with A, search by image, repeated uploads", async ({ page, request }) => {
  const auth = await token(request, "operator");
  const h = { Authorization: `Bearer ${auth}` };
  const scratches = samples("defect").filter((f) => f.includes("scratch"));
  // a scratch reviewed as such, then a later look-alike
  const [a] = await inspect(request, auth, "line1", [scratches[1]]);
  const r = await request.post(`/api/v1/inspections/${a.id}/reviews`, { headers: h, data: { verdict: "anomalous", defect_type: "scratch", note: "" } });
  expect(r.status(), await r.text()).toBe(201);
  const [b] = await inspect(request, auth, "line1", [scratches[2]]);

  await login(page, "operator");
  await page.goto(`/#/inspections/${b.id}`);
  const strip = page.getByTestId("similar-list");
  await expect(strip.locator(`[data-testid=similar-item][data-id="${a.id}"]`)).toBeVisible();
  await expect(strip.locator(`[data-testid=similar-item][data-id="${a.id}"]`)).toContainText("scratch"); // its reviewed type
  // similar past defects lists defects only
  for (const badge of await strip.getByTestId("verdict").all()) await expect(badge).toHaveText("Defect");
  await expect(strip.locator("img").first()).toBeVisible();
  await noSeriousA11yViolations(page, "inspection detail with similar past defects");
  await shot(page, "18-similar-strip");

  // the review queue suggests the reviewed look-alike's type; A accepts it and moves on
  await page.goto("/#/review");
  const count = page.getByTestId("queue-count");
  await expect(count).toContainText("to review");
  const before = parseInt((await count.textContent())!, 10);
  await page.locator(`[data-testid=inspection-row][data-id="${b.id}"]`).click();
  const chip = page.getByTestId("suggestion");
  await expect(chip).toBeVisible();
  const suggested = (await page.getByTestId("suggestion-type").textContent())!;
  await expect(page.getByTestId("suggestion-confidence")).toHaveText(/^\d{1,2} % likely$/); // never "100 %"
  await expect(page.getByTestId("suggestion-votes")).toContainText(/\d+ reviewed look-alikes? voted/);
  await shot(page, "19-review-suggestion");
  await page.locator("body").press("a");
  await expect(count).toContainText(`${before - 1} to review`);
  await expect(page.locator(".lw-row.selected")).not.toHaveAttribute("data-id", String(b.id));
  const reviews = await (await request.get(`/api/v1/inspections/${b.id}/reviews`, { headers: h })).json();
  expect(reviews.at(-1)).toMatchObject({ verdict: "anomalous", defect_type: suggested });

  // search by an uploaded image
  await page.goto("/#/search");
  await page.getByLabel("Image to search by").setInputFiles(scratches[0]);
  await expect(page.getByTestId("search-preview")).toBeVisible();
  await page.getByTestId("search-submit").click();
  await expect(page.getByTestId("search-result").first()).toBeVisible();
  await expect(page.getByTestId("result-heatmap").first()).toBeVisible();
  await noSeriousA11yViolations(page, "search");
  await page.evaluate(() => window.scrollTo(0, 0));
  await shot(page, "20-search");

  // the same image twice: the repeat is badged and links to the first
  const spot = samples("defect").filter((f) => f.includes("spot"))[2];
  const [first] = await inspect(request, auth, "line1", [spot]);
  const [again] = await inspect(request, auth, "line1", [spot]);
  await page.goto(`/#/inspections/${again.id}`);
  await expect(page.getByTestId("duplicate-badge").first()).toBeVisible();
  await expect(page.getByTestId("duplicate-of")).toContainText(`#${first.id}`);
  await expect(page.getByTestId("duplicates")).toContainText(`#${first.id} (original)`);
  await shot(page, "21-duplicate");
});

test("history: filters, pages and CSV export", async ({ page }) => {
  await login(page, "viewer");
  await page.goto("/#/history");
  await expect(page.getByTestId("history-table")).toBeVisible();
  await noSeriousA11yViolations(page, "history");
  await shot(page, "08-history");
  // reviews show where the verdict is: the outcome beside the verdict that counts, and who reviewed
  await expect(page.getByTestId("review-outcome").first()).toBeVisible();
  await expect(page.getByTestId("history-review").first()).toContainText(/operator|engineer/);
  const exported = page.waitForEvent("download");
  await page.getByTestId("export-csv").click();
  const all = readFileSync(await (await exported).path(), "utf8").trim().split(/\r\n/);
  expect(all[0]).toContain("review_verdict,defect_type,review_note,reviewer,reviewed_at,repeat_of");
  expect(all.some((l) => /,good,rim checked under the lamp,operator,|,anomalous,[^,]*,rim checked under the lamp,operator,/.test(l))).toBeTruthy();
  await page.getByTestId("filter-verdict").click();
  await page.getByRole("option", { name: "Defect" }).click();
  await expect(page).toHaveURL(/#\/history\?verdict=anomalous$/); // the filter is in the address
  const table = page.getByTestId("history-table");
  await expect(table.locator("tbody tr").first()).toContainText("Defect");
  for (const row of await table.locator("tbody tr").all()) {
    const text = (await row.textContent())!;
    expect(text.includes("Defect") || text.includes("overturned"), text).toBeTruthy(); // the model said defect
  }
  await page.reload(); // a reload (or a shared link) keeps it
  await expect(page.getByTestId("filter-verdict")).toHaveValue("Defect");
  const download = page.waitForEvent("download");
  await page.getByTestId("export-csv").click();
  const file = await (await download).path();
  const csv = readFileSync(file, "utf8").trim().split(/\r\n/);
  expect(csv[0]).toContain("id,created_at,station");
  expect(csv[0]).toContain("review_verdict,defect_type,review_note,reviewer,reviewed_at,repeat_of");
  expect(csv.length).toBeGreaterThan(1);
  expect(csv.slice(1).every((l) => l.includes(",anomalous,"))).toBeTruthy();
  await page.getByTestId("clear-filters").click();
  await expect(page).toHaveURL(/#\/history$/);
  await expect(page.getByTestId("filter-verdict")).toHaveValue("");
});

test("models: metrics, histogram with threshold and ROC; a viewer cannot activate", async ({ page }) => {
  await login(page, "viewer");
  await page.goto("/#/models");
  await expect(page.getByTestId("models-table")).toBeVisible();
  await page.getByRole("button", { name: "#1 demo" }).click(); // the demo model, evaluated on a labelled test set
  await expect(page.getByTestId("histogram").locator("canvas")).toBeVisible();
  await expect(page.getByTestId("roc").locator("canvas")).toBeVisible();
  await expect(page.getByTestId("activate")).toHaveCount(0);
  // a viewer may take the model away to score with ONNX Runtime: one zip with the manifest and the graphs
  const [bundle] = await Promise.all([page.waitForEvent("download"), page.getByTestId("download-bundle").click()]);
  expect(bundle.suggestedFilename()).toBe("linewatch-model-1.zip");
  const head = readFileSync(await bundle.path()).subarray(0, 2).toString("latin1");
  expect(head).toBe("PK");
  await noSeriousA11yViolations(page, "models");
  await shot(page, "09-models");
});

test("a viewer cannot reach training", async ({ page }) => {
  await login(page, "viewer");
  await expect(page.getByRole("link", { name: "Train" })).toHaveCount(0);
  await expect(page.getByRole("link", { name: "Review queue" })).toHaveCount(0);
  await page.goto("/#/train");
  await expect(page.getByTestId("forbidden")).toContainText("needs the engineer role");
  await expect(page.getByTestId("start-training")).toHaveCount(0);
  await shot(page, "10-viewer-no-training");
});

test("train: upload good images, choose a test set, watch the progress bar to a new version, activate it", async ({ page }) => {
  test.setTimeout(300_000);
  await login(page, "engineer");
  await page.goto("/#/train");
  await page.getByLabel("Good part images").setInputFiles(trainImages());
  await expect(page.getByTestId("drop-good-count")).toContainText(`${trainImages().length} files`);
  await page.getByRole("textbox", { name: "Test dataset" }).click();
  await page.getByRole("option", { name: /washers, test/ }).click();
  await page.getByTestId("image-size").click();
  await page.getByRole("option", { name: "64", exact: true }).click();
  // an inspection area: a box dragged over the photo's top-left corner, which its models then ignore
  const surface = page.getByTestId("area-surface");
  const at = (await surface.boundingBox())!;
  await page.mouse.move(at.x + 1, at.y + 1);
  await page.mouse.down();
  await page.mouse.move(at.x + at.width * 0.3, at.y + at.height * 0.3, { steps: 5 });
  await page.mouse.up();
  await expect(page.getByTestId("area-box")).toHaveCount(1);
  await expect(page.getByTestId("area-share")).toHaveText(/^9[0-2] % of each photo inspected$/);
  await noSeriousA11yViolations(page, "train");
  await shot(page, "11-train");
  await page.getByTestId("start-training").click();
  await expect(page.getByTestId("upload-bytes").or(page.getByTestId("job-progress"))).toBeVisible(); // bytes sent, then the job
  const bar = page.getByTestId("job-progress");
  await expect(bar).toBeVisible();
  // every progress value the bar shows, recorded in the page from now on (a short training can be nearly done by
  // the time the checks below have run)
  await bar.evaluate((el) => {
    const w = window as unknown as { progressSeen: number[] };
    w.progressSeen = [Number(el.getAttribute("data-progress"))];
    new MutationObserver(() => w.progressSeen.push(Number(el.getAttribute("data-progress")))).observe(el, {
      attributes: true,
      attributeFilter: ["data-progress"],
    });
  });
  await expect(bar).toBeInViewport(); // at 1280×800, without scrolling
  await expect(page.getByTestId("job-message")).toContainText("Phase:");
  // another tab opened while it runs shows the running job and does not offer a second start
  const other = await page.context().newPage();
  await other.goto("/#/train");
  await expect(other.getByTestId("job-progress")).toBeVisible();
  await expect(other.getByTestId("start-training")).toBeDisabled();
  await other.close();
  const done = page.getByTestId("training-done");
  if (!(await done.isVisible())) await shot(page, "12-train-progress");
  await expect(done).toBeVisible({ timeout: 240_000 });
  const recorded = await page.evaluate(() => (window as unknown as { progressSeen: number[] }).progressSeen);
  const seen = recorded.filter((v, i) => i === 0 || v !== recorded[i - 1]);
  expect(seen, "progress never goes back").toEqual([...seen].sort((a, b) => a - b));
  expect(seen.filter((v) => v > 0 && v < 1).length, `progress values seen: ${seen}`).toBeGreaterThan(1);
  await expect(done).toBeInViewport(); // the "version ready" message too
  await shot(page, "13-train-done");
  await page.getByRole("link", { name: "Open it in Models" }).click();
  await expect(page.getByTestId("models-table")).toContainText("good parts");
  await expect(page.getByTestId("area-line")).toHaveText(/^Inspects 9[0-2] % of each photo/);
  await expect(page.getByTestId("histogram").locator("canvas")).toBeVisible(); // evaluated on the test set chosen
  // a station that never changed model has nothing to roll back to
  await page.getByTestId("activate-station").click();
  await page.getByRole("option", { name: "line2" }).click();
  await expect(page.getByTestId("rollback")).toBeDisabled();
  await page.getByTestId("activate-station").click();
  await page.getByRole("option", { name: "line1" }).click();
  const runs = page.getByTestId("station-runs");
  const before = (await runs.textContent())!.match(/runs #\d+ now/)![0];
  const asked: string[] = [];
  page.on("dialog", (d) => {
    asked.push(d.message());
    d.accept();
  });
  await page.getByTestId("activate").click();
  await expect(page.getByTestId("models-message")).toContainText("now active on line1");
  expect(asked.at(-1)).toContain("Activate version");
  await expect(runs).not.toContainText(before);
  await expect(page.getByTestId("activate")).toBeDisabled(); // already active there
  await shot(page, "14-models-activated");
  await page.getByTestId("rollback").click();
  await expect(page.getByTestId("models-message")).toContainText("line1 is back on its previous model");
  expect(asked.at(-1)).toContain("Roll line1 back");
  await expect(runs).toContainText(before);
  // its thresholds set again at another false-alarm rate, from the good scores it keeps: a new version, shown when ready
  const trained = (await page.getByRole("heading", { name: /^Version #\d+/ }).textContent())!.match(/#(\d+)/)![1];
  await page.getByRole("textbox", { name: /False alarms/ }).fill("5");
  await page.getByTestId("recalibrate-start").click();
  await expect(page.getByTestId("recalibrate-message")).toContainText("is ready", { timeout: 60_000 });
  await expect(page.getByTestId("calibration-line")).toContainText(`from version #${trained} on the `);
  await expect(page.getByTestId("calibration-line")).toContainText("at 5.00 % false alarms");
  await expect(page.getByTestId("models-table")).toContainText("recalibrated on kept scores, 5 % false alarms");
  await noSeriousA11yViolations(page, "models-recalibrated");
  await shot(page, "15-models-recalibrated");
});

test("tablet (820×1180): the review queue shows the part and the decision together; History and Models fit; axe", async ({ page }) => {
  await page.setViewportSize({ width: 820, height: 1180 });
  await login(page, "operator");
  await page.goto("/#/review");
  await expect(page.getByTestId("inspection-stage")).toBeVisible();
  await expect(page.getByTestId("inspection-stage")).toBeInViewport({ ratio: 1 });
  await expect(page.getByRole("button", { name: /^Confirm/ })).toBeInViewport({ ratio: 1 });
  await expect(page.getByRole("button", { name: /^Overturn/ })).toBeInViewport({ ratio: 1 });
  await noSeriousA11yViolations(page, "review queue (tablet)");
  await shot(page, "22-review-tablet");
  for (const [where, testid] of [
    ["/#/history", "history-table"],
    ["/#/models", "models-table"],
  ]) {
    await page.goto(where);
    const table = page.getByTestId(testid);
    await expect(table.locator("tbody tr").first()).toBeVisible();
    await page.waitForTimeout(300); // badges laid out
    const problems = await table.evaluate((t) => {
      const out: string[] = [];
      const box = t.parentElement!;
      if (t.scrollWidth > box.clientWidth + 1) out.push(`table ${t.scrollWidth} px wide in ${box.clientWidth} px: columns off-screen`);
      if (t.getBoundingClientRect().right > window.innerWidth + 1) out.push("table past the window's right edge");
      for (const row of Array.from(t.querySelectorAll("tbody tr"))) {
        const badges = Array.from(row.querySelectorAll(".mantine-Badge-root")) as HTMLElement[];
        for (const b of badges) {
          const label = (b.querySelector(".mantine-Badge-label") as HTMLElement) ?? b;
          if (label.scrollWidth > label.clientWidth + 1) out.push(`clipped badge "${b.textContent}"`);
          const r = b.getBoundingClientRect();
          const cell = b.closest("td")!.getBoundingClientRect();
          if (r.left < cell.left - 1 || r.right > cell.right + 1) out.push(`badge "${b.textContent}" spills out of its cell`);
        }
        for (let i = 0; i < badges.length; i++)
          for (let j = i + 1; j < badges.length; j++) {
            const a = badges[i].getBoundingClientRect();
            const c = badges[j].getBoundingClientRect();
            const w = Math.min(a.right, c.right) - Math.max(a.left, c.left);
            const h = Math.min(a.bottom, c.bottom) - Math.max(a.top, c.top);
            if (w > 1 && h > 1) out.push(`badges "${badges[i].textContent}" and "${badges[j].textContent}" overlap`);
          }
      }
      return out;
    });
    expect(problems, `${where} at tablet width`).toEqual([]);
    await noSeriousA11yViolations(page, `${where} (tablet)`);
    await shot(page, `23-tablet-${testid}`);
  }
});

test("admin: users and roles, an API key shown once, stations, the audit log", async ({ page }) => {
  // the pages work under the service's Content-Security-Policy: the browser reports no violation
  const violations: string[] = [];
  page.on("console", (m) => {
    if (/Content.Security.Policy/i.test(m.text())) violations.push(m.text());
  });
  await login(page, "admin");
  await page.goto("/#/admin");
  await expect(page.getByTestId("users-table")).toContainText("viewer");
  await noSeriousA11yViolations(page, "admin users");
  await shot(page, "15-admin-users");
  // a usable password field (a named show/hide button), switches that say their state
  await expect(page.getByRole("button", { name: "Show or hide the characters typed" })).toBeVisible();
  await expect(page.getByTestId("users-table").getByText("can sign in").first()).toBeVisible();
  await page.getByRole("tab", { name: "API keys" }).click();
  await page.getByLabel("Key name").fill("camera 1");
  await page.getByRole("button", { name: "Create key" }).click();
  await expect(page.getByTestId("new-key-value")).toContainText("lwk_");
  await expect(page.getByTestId("key-state").first()).toHaveText(/active|revoked/);
  await noSeriousA11yViolations(page, "admin keys");
  await shot(page, "16-admin-keys");
  await page.getByRole("tab", { name: "Stations" }).click();
  await page.getByLabel("Station name").fill("line3");
  await page.getByRole("button", { name: "Add station" }).click();
  await expect(page.getByTestId("admin-message")).toContainText("Station line3 created");
  await noSeriousA11yViolations(page, "admin stations");
  await shot(page, "17-admin-stations");
  await page.getByRole("tab", { name: "Audit log" }).click();
  await expect(page.getByTestId("audit-table")).toContainText("station.create");
  await expect(page.getByTestId("audit-table")).toContainText("api_key.create");
  await expect(page.getByTestId("audit-table")).toContainText("auth.login");
  const exported = page.waitForEvent("download");
  await page.getByRole("button", { name: "Export CSV" }).click();
  expect((await exported).suggestedFilename()).toBe("linewatch-audit.csv");
  await noSeriousA11yViolations(page, "admin audit log");
  await shot(page, "18-admin-audit");
  expect(violations).toEqual([]);
  await page.setViewportSize({ width: 820, height: 1180 });
  await page.getByRole("tab", { name: "Users and roles" }).click();
  await expect(page.getByTestId("users-table")).toBeVisible();
  await noSeriousA11yViolations(page, "admin users (tablet)");
  // a keyboard user sees where the focus is: Tab from the user name field to the first button, a ring around it
  await page.getByLabel("User name").focus();
  for (let i = 0; i < 6 && (await page.evaluate(() => document.activeElement?.tagName)) !== "BUTTON"; i++) await page.keyboard.press("Tab");
  const ring = await page.evaluate(() => {
    const st = getComputedStyle(document.activeElement!);
    return { tag: document.activeElement!.tagName, style: st.outlineStyle, width: parseFloat(st.outlineWidth) };
  });
  expect(ring.tag).toBe("BUTTON");
  expect(ring.style).not.toBe("none");
  expect(ring.width).toBeGreaterThanOrEqual(2);
});
