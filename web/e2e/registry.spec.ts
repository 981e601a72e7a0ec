import { expect, test } from "@playwright/test";
import { login, noSeriousA11yViolations, shot } from "./helpers";

// The team's MLflow model registry (LINEWATCH_REGISTRY_URI, seeded by demo_server.py with the demo model as
// "washer@production"): imported as a new version, activated, published back under an alias.
test("model registry: a registered version imported, activated, and published back", async ({ page }) => {
  test.setTimeout(180_000);
  await login(page, "engineer");
  await page.goto("/#/models");
  const card = page.getByTestId("registry-import");
  await card.getByRole("textbox", { name: /Registered version/ }).fill("washer@production");
  await card.getByTestId("registry-import-start").click();
  await expect(page.getByTestId("registry-message")).toContainText("is ready (washer version 1)", { timeout: 120_000 });
  const id = (await page.getByTestId("registry-message").textContent())!.match(/Version #(\d+)/)![1];
  await page.getByRole("button", { name: new RegExp(`^#${id} washer v1 \\(registry\\)`) }).click();
  await expect(page.getByTestId("registry-line")).toContainText("Imported from the model registry: washer version 1");
  page.on("dialog", (d) => d.accept());
  await page.getByTestId("activate-station").click();
  await page.getByRole("option", { name: "line2" }).click();
  await page.getByTestId("activate").click();
  await expect(page.getByTestId("models-message")).toContainText(`Version #${id} is now active on line2`);
  const publish = page.getByTestId("registry-publish");
  await publish.getByRole("textbox", { name: /Registered model/ }).fill("washer");
  await publish.getByRole("textbox", { name: /Alias/ }).fill("line2");
  await publish.getByTestId("publish-start").click();
  await expect(page.getByTestId("publish-message")).toContainText("Published as washer version 2, alias line2");
  await noSeriousA11yViolations(page, "models-registry");
  await shot(page, "16-models-registry");
});
