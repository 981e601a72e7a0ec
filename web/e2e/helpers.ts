import AxeBuilder from "@axe-core/playwright";
import { type APIRequestContext, type Page, expect } from "@playwright/test";
import { mkdirSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";

export const ARTIFACTS = path.resolve(import.meta.dirname, "..", "e2e-artifacts");
mkdirSync(ARTIFACTS, { recursive: true });

export const ROOT = process.env.LINEWATCH_E2E_ROOT ?? `/tmp/linewatch-e2e-${process.env.LINEWATCH_E2E_PORT ?? 8765}`;

export function samples(kind: "good" | "defect"): string[] {
  const dir = path.join(ROOT, "samples");
  return readdirSync(dir)
    .filter((f) => (kind === "good" ? f.startsWith("good_") : !f.startsWith("good_")))
    .map((f) => path.join(dir, f));
}

export function trainImages(): string[] {
  const dir = path.join(ROOT, "train-good");
  return readdirSync(dir).map((f) => path.join(dir, f));
}

export async function token(request: APIRequestContext, user: string): Promise<string> {
  const r = await request.post("/api/v1/auth/login", { data: { username: user, password: `${user}-password` } });
  expect(r.ok()).toBeTruthy();
  return (await r.json()).access_token;
}

export async function inspect(request: APIRequestContext, auth: string, station: string, files: string[]) {
  const form = new FormData();
  for (const f of files) form.append("files", new Blob([readFileSync(f)], { type: "image/png" }), path.basename(f));
  const r = await request.post(`/api/v1/stations/${station}/inspect`, {
    headers: { Authorization: `Bearer ${auth}` },
    multipart: form,
  });
  expect(r.status(), await r.text()).toBe(200);
  return (await r.json()) as { id: number; verdict: string }[];
}

export async function login(page: Page, user: string) {
  await page.goto("/");
  await page.getByLabel("User name").fill(user);
  await page.getByLabel("Password").fill(`${user}-password`);
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByTestId("user-name")).toHaveText(user);
}

export async function shot(page: Page, name: string) {
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
}

/** axe-core on the page as it is: no serious or critical violation. */
export async function noSeriousA11yViolations(page: Page, where: string) {
  const results = await new AxeBuilder({ page }).analyze();
  const bad = results.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  const summary = bad.map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => `${n.target.join(" ")} [${(n.failureSummary ?? "").split("\n").slice(1, 2).join("")}]`).slice(0, 3).join(" | ")}`);
  expect(summary, `accessibility on ${where}`).toEqual([]);
}
