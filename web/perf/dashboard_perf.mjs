// Dashboard performance, measured in Debian's chromium against a real `linewatch serve` with a demo model
// (e2e/demo_server.py, started here unless --url is given):
//
//  1. First load: the JavaScript the browser downloads to show the login page, and the live page once signed in,
//     each file gzipped (level 9, as a server or CDN would send it) and summed.
//  2. Live page under load: inspection events at --rate per second (default 20) for --seconds (default 120),
//     injected into the page's real WebSocket (`--source inject`, default: the page's capacity, whatever the
//     server's) or sent as real inspections through the API (`--source api`: the whole system). Reports frames
//     slower than 50 ms, long tasks (> 50 ms), frame rate, the number of rows in the DOM and the JS heap (after a
//     forced GC) over time.
//  3. An hour at 20 per second: 72,000 more events as fast as the page takes them; the heap after it.
//
// node perf/dashboard_perf.mjs [--rate 20] [--seconds 120] [--source inject|api] [--hour] [--url http://...]
// Writes perf-results/dashboard_perf.json and prints a Markdown table.
import { chromium } from "@playwright/test";
import { spawn } from "node:child_process";
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { gzipSync } from "node:zlib";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => {
    if (a.startsWith("--")) acc.push([a.slice(2), all[i + 1] && !all[i + 1].startsWith("--") ? all[i + 1] : "true"]);
    return acc;
  }, []),
);
const RATE = Number(args.rate ?? 20);
const SECONDS = Number(args.seconds ?? 120);
const SOURCE = args.source ?? "inject";
const HOUR = args.hour !== "false";
const PORT = Number(args.port ?? 8799);
const ROOT = args.root ?? `/tmp/linewatch-perf-${PORT}`;
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const here = path.dirname(new URL(import.meta.url).pathname);
const OUT = path.resolve(here, "..", "perf-results");
mkdirSync(OUT, { recursive: true });

async function waitFor(url, seconds) {
  const until = Date.now() + seconds * 1000;
  while (Date.now() < until) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      /* not up yet */
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`${url} did not answer within ${seconds} s`);
}

let server = null;
let base = args.url;
if (!base) {
  base = `http://127.0.0.1:${PORT}`;
  console.error(`starting the demo server on ${base} (trains a small model first)…`);
  server = spawn("bash", ["-c", `rm -rf ${ROOT} && exec python e2e/demo_server.py --port ${PORT} --root ${ROOT}`], {
    cwd: path.resolve(here, ".."),
    stdio: ["ignore", "inherit", "inherit"],
  });
  await waitFor(`${base}/healthz`, 600);
}

async function login(user) {
  const r = await fetch(`${base}/api/v1/auth/login`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username: user, password: `${user}-password` }),
  });
  if (!r.ok) throw new Error(`login ${user}: ${r.status}`);
  return (await r.json()).access_token;
}

const sampleDir = path.join(ROOT, "samples");
const samples = readdirSync(sampleDir).map((f) => ({ name: f, bytes: readFileSync(path.join(sampleDir, f)) }));
const opToken = await login("operator");

async function inspectOne(i) {
  const s = samples[i % samples.length];
  const form = new FormData();
  form.append("files", new Blob([s.bytes], { type: "image/png" }), s.name);
  const r = await fetch(`${base}/api/v1/stations/line1/inspect`, {
    method: "POST",
    body: form,
    headers: { Authorization: `Bearer ${opToken}` },
  });
  if (!r.ok) throw new Error(`inspect: ${r.status} ${await r.text()}`);
  return (await r.json())[0];
}

// a pool of real inspections: injected events point at their images (thumbnails load for real)
const pool = [];
for (let i = 0; i < 20; i++) pool.push(await inspectOne(i));

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: ["--no-sandbox", "--enable-precise-memory-info", "--js-flags=--expose-gc"],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
const page = await context.newPage();
const cdp = await context.newCDPSession(page);

// 1. first load
const js = new Map();
page.on("response", async (r) => {
  const url = r.url();
  if (!url.endsWith(".js") || js.has(url)) return;
  js.set(url, null);
  try {
    const body = await r.body();
    js.set(url, { raw: body.length, gz: gzipSync(body, { level: 9 }).length });
  } catch {
    /* not readable: counted as missing below */
  }
});
await page.goto(base);
await page.getByRole("button", { name: "Sign in" }).waitFor();
await page.waitForLoadState("networkidle");
const sum = () => {
  let raw = 0;
  let gz = 0;
  for (const v of js.values()) if (v) (raw += v.raw), (gz += v.gz);
  return { files: js.size, rawKB: raw / 1024, gzKB: gz / 1024 };
};
const loginLoad = sum();
await page.getByLabel("User name").fill("operator");
await page.getByLabel("Password").fill("operator-password");
await page.getByRole("button", { name: "Sign in" }).click();
await page.getByTestId("live-state").filter({ hasText: "Live" }).waitFor();
await page.waitForLoadState("networkidle");
const liveLoad = sum();
console.error(`first load JS (gzip): login ${loginLoad.gzKB.toFixed(1)} KB, live page ${liveLoad.gzKB.toFixed(1)} KB`);

// 2. the live page under load
let socket = null;
if (SOURCE === "inject") {
  await page.routeWebSocket(/\/api\/v1\/events/, (ws) => {
    ws.connectToServer(); // real events still pass through
    socket = ws;
  });
  await page.reload();
  await page.getByTestId("live-state").filter({ hasText: "Live" }).waitFor();
  if (!socket) throw new Error("the live socket was not routed");
}

await page.evaluate(() => {
  const w = window;
  w.__perf = { longTasks: 0, longTaskMs: 0, frames: 0, slowFrames: 0, worstFrame: 0 };
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      w.__perf.longTasks++;
      w.__perf.longTaskMs += e.duration;
    }
  }).observe({ type: "longtask", buffered: false });
  let last = performance.now();
  const tick = (t) => {
    const dt = t - last;
    last = t;
    w.__perf.frames++;
    if (dt > 50) w.__perf.slowFrames++;
    if (dt > w.__perf.worstFrame) w.__perf.worstFrame = dt;
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
});

async function heapMB() {
  await cdp.send("HeapProfiler.collectGarbage");
  const { usedSize } = await cdp.send("Runtime.getHeapUsage");
  return usedSize / 1024 / 1024;
}
const domRows = () => page.locator('[data-testid="inspection-row"]').count();

let nextId = 10_000_000;
function event() {
  const src = pool[nextId % pool.length];
  const id = nextId++;
  const verdict = Math.random() < 0.1 ? "anomalous" : "good";
  return JSON.stringify({
    type: "inspection",
    inspection: { ...src, id, verdict, normalized_score: verdict === "anomalous" ? 0.7 : 0.2, created_at: new Date().toISOString() },
  });
}

const heap = [{ t: 0, mb: await heapMB() }];
const started = Date.now();
let sent = 0;
let failed = 0;
const inflight = new Set();
const interval = 1000 / RATE;
while (Date.now() - started < SECONDS * 1000) {
  const due = Math.floor(((Date.now() - started) / 1000) * RATE);
  while (sent < due) {
    if (SOURCE === "inject") socket.send(event());
    else {
      const p = inspectOne(sent).catch(() => failed++);
      inflight.add(p);
      p.finally(() => inflight.delete(p));
    }
    sent++;
  }
  const t = Math.round((Date.now() - started) / 1000);
  if (t > 0 && t % 30 === 0 && heap[heap.length - 1].t !== t) heap.push({ t, mb: await heapMB() });
  await new Promise((r) => setTimeout(r, interval));
}
await Promise.all(inflight);
await page.waitForTimeout(1000);
const perf = await page.evaluate(() => window.__perf);
const rows = await domRows();
const shownPass = Number(await page.getByTestId("count-pass").textContent());
const shownFail = Number(await page.getByTestId("count-fail").textContent());
// repeated uploads (the samples come round again) are listed but kept out of the counters, as in the service
const dupNode = page.getByTestId("duplicates");
const shownDup = (await dupNode.count()) ? Number(await dupNode.textContent()) : 0;
heap.push({ t: SECONDS, mb: await heapMB() });
await page.screenshot({ path: path.join(OUT, "live-under-load.png") });
const load = {
  source: SOURCE,
  rate: RATE,
  seconds: SECONDS,
  sent,
  failed,
  counted: shownPass + shownFail + shownDup,
  repeats: shownDup,
  frames: perf.frames,
  fps: perf.frames / SECONDS,
  slowFrames: perf.slowFrames,
  worstFrameMs: perf.worstFrame,
  longTasks: perf.longTasks,
  longTaskMs: perf.longTaskMs,
  domRows: rows,
  heapMB: heap,
};
console.error(JSON.stringify(load));

// 3. an hour's worth at 20 per second
let hour = null;
if (HOUR && SOURCE === "inject") {
  const t0 = Date.now();
  for (let i = 0; i < 72_000; i++) {
    socket.send(event());
    if (i % 500 === 499) await page.waitForTimeout(50);
  }
  await page.waitForTimeout(1500);
  hour = { events: 72_000, seconds: (Date.now() - t0) / 1000, heapMB: await heapMB(), domRows: await domRows() };
  console.error(JSON.stringify(hour));
}

await browser.close();
if (server) server.kill("SIGTERM");

const result = { date: new Date().toISOString(), loginLoad, liveLoad, load, hour };
writeFileSync(path.join(OUT, "dashboard_perf.json"), JSON.stringify(result, null, 2));
const f1 = (v) => v.toFixed(1);
console.log(`| measure | value |
|---|---|
| first load JS, login page (gzip) | ${f1(loginLoad.gzKB)} KB in ${loginLoad.files} files (${f1(loginLoad.rawKB)} KB raw) |
| first load JS, live page after sign-in (gzip) | ${f1(liveLoad.gzKB)} KB in ${liveLoad.files} files (${f1(liveLoad.rawKB)} KB raw) |
| live page: events (${SOURCE}) | ${sent} at ${RATE}/s for ${SECONDS} s; ${load.counted} shown on the page (${shownDup} of them flagged as repeats)${failed ? `, ${failed} failed` : ""} |
| frames | ${perf.frames} (${f1(load.fps)} fps); ${perf.slowFrames} slower than 50 ms; worst ${f1(perf.worstFrame)} ms |
| long tasks (> 50 ms) | ${perf.longTasks}, ${f1(perf.longTaskMs)} ms in all |
| rows in the DOM | ${rows} (virtualised) |
| JS heap after GC | ${heap.map((h) => `${h.t} s: ${f1(h.mb)} MB`).join(", ")} |
${hour ? `| after an hour's worth (72,000 more events) | heap ${f1(hour.heapMB)} MB, ${hour.domRows} rows in the DOM |\n` : ""}`);
