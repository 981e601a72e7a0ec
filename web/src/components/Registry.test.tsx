import { act, screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Model } from "../api/client";
import { modelVersion, renderAs, stubFetch } from "../test/machines";
import { RegistryImport, RegistryPublish, registryLine, registryOf } from "./Registry";

const model = modelVersion();

describe("Registry", { timeout: 40_000 }, () => {
  afterEach(() => vi.unstubAllGlobals());

  it("imports a registered version by alias, follows the job and names the new version", async () => {
    let status = "running";
    const sent = stubFetch({
      "POST /api/v1/registry/import": { id: 9, kind: "import", status: "queued", progress: 0, message: "queued" },
      "GET /api/v1/jobs/9": () => ({
        id: 9,
        kind: "import",
        status,
        progress: status === "running" ? 0.4 : 1,
        message: "",
        error: null,
        result: status === "succeeded" ? { model_id: 7, registered: "washer", version: 3 } : null,
      }),
    });
    const done = vi.fn();
    const { stream } = renderAs("engineer", <RegistryImport onDone={done} />);
    const ref = screen.getByRole("textbox", { name: /Registered version/ });
    await userEvent.type(ref, "washer@");
    expect(screen.getByTestId("registry-import-start")).toBeDisabled(); // an alias needs its name
    expect(screen.getByText("NAME, NAME/3 or NAME@alias")).toBeInTheDocument();
    await userEvent.type(ref, "production");
    await userEvent.click(screen.getByTestId("registry-import-start"));
    await waitFor(() => expect(sent.some((s) => s.method === "POST")).toBe(true));
    expect(sent.find((s) => s.method === "POST")!.body).toEqual({ ref: "washer@production" });
    expect(done).toHaveBeenCalledWith(null); // listed at once, importing
    status = "succeeded";
    act(() => stream.jobs.forEach((f) => f({ id: 9, kind: "import", status: "succeeded", progress: 1, message: "" })));
    expect(await screen.findByTestId("registry-message")).toHaveTextContent(
      "Version #7 is ready (washer version 3): activate it on a station.",
    );
    expect(done).toHaveBeenLastCalledWith(7);
  });

  it("shows the service's refusal of an import (no registry set)", async () => {
    stubFetch({});
    renderAs("engineer", <RegistryImport onDone={() => {}} />);
    await userEvent.type(screen.getByRole("textbox", { name: /Registered version/ }), "washer/2");
    await userEvent.type(screen.getByRole("textbox", { name: /Name here/ }), "from the lab");
    await userEvent.click(screen.getByTestId("registry-import-start"));
    expect(await screen.findByTestId("registry-message")).toHaveTextContent("No route POST /api/v1/registry/import.");
  });

  it("publishes a ready version under a name and an alias, refusing names the registry would misread", async () => {
    const sent = stubFetch({
      "POST /api/v1/models/5/publish": { name: "washer", version: 4, run_id: "abc", alias: "production" },
    });
    renderAs("engineer", <RegistryPublish model={model} />);
    const name = screen.getByRole("textbox", { name: /Registered model/ });
    await userEvent.type(name, "wash@er");
    expect(screen.getByTestId("publish-start")).toBeDisabled();
    await userEvent.clear(name);
    await userEvent.type(name, "washer");
    await userEvent.type(screen.getByRole("textbox", { name: /Alias/ }), "1st");
    expect(screen.getByTestId("publish-start")).toBeDisabled();
    await userEvent.clear(screen.getByRole("textbox", { name: /Alias/ }));
    await userEvent.type(screen.getByRole("textbox", { name: /Alias/ }), "production");
    await userEvent.click(screen.getByTestId("publish-start"));
    expect(await screen.findByTestId("publish-message")).toHaveTextContent(
      "Published as washer version 4, alias production (MLflow run abc).",
    );
    expect(sent.find((s) => s.method === "POST")!.body).toEqual({ name: "washer", alias: "production" });
  });

  it("says where an imported version came from", () => {
    const m = { ...model, metrics: { registry: { ref: "washer@production", name: "washer", version: 3, run_id: "r1" } } } as Model;
    expect(registryOf(model)).toBeNull();
    expect(registryLine(registryOf(m)!)).toBe(
      "Imported from the model registry: washer version 3 (asked as washer@production; MLflow run r1).",
    );
  });
});
