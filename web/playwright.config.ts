import { defineConfig } from "@playwright/test";

// End to end against a real `linewatch serve` with a demo model (e2e/demo_server.py), in Debian's chromium.
// LINEWATCH_E2E_URL points at a server already running (then none is started).
const port = Number(process.env.LINEWATCH_E2E_PORT ?? 8765);
const external = process.env.LINEWATCH_E2E_URL;
export const root = process.env.LINEWATCH_E2E_ROOT ?? `/tmp/linewatch-e2e-${port}`;

export default defineConfig({
  testDir: "e2e",
  outputDir: "test-results",
  timeout: 120_000,
  expect: { timeout: 15_000 },
  fullyParallel: false,
  workers: 1,
  retries: 0,
  reporter: [["list"]],
  use: {
    baseURL: external ?? `http://127.0.0.1:${port}`,
    viewport: { width: 1280, height: 800 },
    launchOptions: { executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium", args: ["--no-sandbox"] },
    trace: "retain-on-failure",
    screenshot: "only-on-failure",
  },
  webServer: external
    ? undefined
    : {
        command: `rm -rf ${root} && python e2e/demo_server.py --port ${port} --root ${root}`,
        url: `http://127.0.0.1:${port}/healthz`,
        timeout: 300_000,
        reuseExistingServer: false,
        stdout: "pipe",
        stderr: "pipe",
      },
});
