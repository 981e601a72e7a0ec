import { defineConfig } from "@playwright/test";

// End to end against a real `linewatch serve` with a demo model (e2e/demo_server.py), in Debian's chromium.
// LINEWATCH_E2E_URL points at a server already running (then none is started).
const port = Number(process.env.LINEWATCH_E2E_PORT ?? 8765);
const external = process.env.LINEWATCH_E2E_URL;
export const root = process.env.LINEWATCH_E2E_ROOT ?? `/tmp/linewatch-e2e-${port}`;
// The service takes readings from the plant's MQTT broker (the machines story; it skips when none answers): a topic
// prefix and client id of this run's own, so runs sharing the broker never see each other's readings or sessions.
// Set here once, inherited by the workers.
export const mqttUrl = (process.env.LINEWATCH_E2E_MQTT_URL ??= "mqtt://127.0.0.1:1883");
const run = `${port}-${Date.now().toString(36)}`;
export const mqttPrefix = (process.env.LINEWATCH_E2E_MQTT_PREFIX ??= external ? "" : `linewatch-e2e-${run}`);

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
        env: {
          ...(process.env as Record<string, string>),
          LINEWATCH_MQTT_URL: mqttUrl,
          LINEWATCH_MQTT_TOPIC_PREFIX: mqttPrefix,
          LINEWATCH_MQTT_CLIENT_ID: `linewatch-e2e-${run}`,
          // the team's MLflow model registry: a database file of this run's, seeded with the demo model
          LINEWATCH_REGISTRY_URI: `sqlite:///${root}/registry/mlflow.db`,
        },
        url: `http://127.0.0.1:${port}/healthz`,
        timeout: 300_000,
        reuseExistingServer: false,
        stdout: "pipe",
        stderr: "pipe",
      },
});
