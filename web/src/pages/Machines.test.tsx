import { act, screen, within } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { machine, renderAs, stubFetch } from "../test/machines";
import MachinesPage from "./Machines";

const lines = [
  { id: 1, name: "L1", description: "", machines: 2, created_at: "" },
  { id: 2, name: "L2", description: "", machines: 0, created_at: "" },
];

describe("MachinesPage", { timeout: 15_000 }, () => {
  afterEach(() => {
    vi.unstubAllGlobals();
    vi.useRealTimers();
  });

  it("shows every machine by line with its health and open alerts, and follows machine_state events", async () => {
    stubFetch({
      "GET /api/v1/machines": [
        machine({ name: "press-1", health: 0.93, active_model_id: 2 }),
        machine({ id: 2, name: "oven-2", health: 0.3, open_alerts: 2, active_model_id: 5 }),
      ],
      "GET /api/v1/lines": lines,
    });
    const { stream } = renderAs("viewer", <MachinesPage />);
    const press = await screen.findByText("press-1");
    const card = press.closest("[data-testid=machine-card]") as HTMLElement;
    expect(within(card).getByTestId("machine-health")).toHaveTextContent("Normal · 93 %");
    const oven = screen.getByText("oven-2").closest("[data-testid=machine-card]") as HTMLElement;
    expect(within(oven).getByTestId("machine-health")).toHaveTextContent("Alerting · 30 %");
    expect(within(oven).getByTestId("machine-open-alerts")).toHaveTextContent("2 open alerts");
    expect(within(oven).getByTestId("machine-open-alerts")).toHaveAttribute("href", "#/alerts?machine=oven-2");
    expect(screen.getByTestId("machines-summary")).toHaveTextContent("2 machines · 1 alerting · 2 open alerts");
    expect(screen.getByText("No machines on this line yet.")).toBeInTheDocument(); // L2
    expect(screen.queryByTestId("import-machines")).not.toBeInTheDocument(); // a viewer reads

    // live: health falls, a value arrives, an alert opens; applied together at most twice a second
    await act(async () => {
      stream.machineStates.forEach((f) =>
        f({ machine: "press-1", line: "L1", time: Date.now() / 1000, health: 0.61, score: 2.5, values: { oil_temp: 81.25 }, readings: 10, open_alert_id: null }),
      );
      await new Promise((r) => setTimeout(r, 600));
    });
    expect(within(card).getByTestId("machine-health")).toHaveTextContent("Watch · 61 %");
    expect(within(card).getByTestId("machine-values")).toHaveTextContent("oil_temp 81.25 °C");
    expect(within(card).getByTestId("machine-last-reading")).toHaveTextContent(/last reading \d s ago/);
  });

  it("reloads when an alert opens, and offers engineers an import of definitions", async () => {
    let open = 0;
    const sent = stubFetch({
      "GET /api/v1/machines": () => [machine({ open_alerts: open })],
      "GET /api/v1/lines": lines.slice(0, 1),
    });
    const { stream } = renderAs("engineer", <MachinesPage />);
    expect(await screen.findByTestId("machine-open-alerts")).toHaveTextContent("No open alert");
    expect(screen.getByTestId("import-machines")).toBeInTheDocument();
    open = 1;
    const before = sent.length;
    await act(async () => {
      stream.alerts.forEach((f) => f({ change: "extended", alert: {} as never }));
      await new Promise((r) => setTimeout(r, 400));
    });
    expect(sent.length).toBe(before); // an extended alert changes no count
    await act(async () => {
      stream.alerts.forEach((f) => f({ change: "opened", alert: {} as never }));
      await new Promise((r) => setTimeout(r, 400));
    });
    expect(screen.getByTestId("machine-open-alerts")).toHaveTextContent("1 open alert");
  });

  it("says how machines come when there are none", async () => {
    stubFetch({ "GET /api/v1/machines": [], "GET /api/v1/lines": [] });
    renderAs("engineer", <MachinesPage />);
    expect(await screen.findByTestId("machines-empty")).toHaveTextContent("Import a YAML or JSON file");
  });
});
