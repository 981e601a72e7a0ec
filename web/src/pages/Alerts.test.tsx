import { act, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, describe, expect, it, vi } from "vitest";
import { alert, machine, renderAs, stubFetch } from "../test/machines";
import AlertsPage from "./Alerts";

describe("AlertsPage", { timeout: 15_000 }, () => {
  afterEach(() => {
    vi.unstubAllGlobals();
    history.replaceState(null, "", "#/");
  });

  it("lists open unacknowledged alerts first and adds live ones", async () => {
    history.replaceState(null, "", "#/alerts");
    stubFetch({
      "GET /api/v1/alerts": [
        alert({ id: 3, status: "closed", closed_at: "2026-12-03T10:05:00Z" }),
        alert({ id: 2, acknowledged: true, acknowledged_by: "bob" }),
        alert({ id: 1 }),
      ],
      "GET /api/v1/machines": [machine()],
    });
    const { stream } = renderAs("viewer", <AlertsPage />);
    await screen.findByTestId("alerts-table");
    const ids = () => screen.getAllByTestId("alert-row").map((r) => r.getAttribute("data-id"));
    expect(ids()).toEqual(["1", "2", "3"]);
    expect(screen.getByTestId("alerts-summary")).toHaveTextContent("1 open and not acknowledged");
    act(() => stream.alerts.forEach((f) => f({ change: "opened", alert: alert({ id: 9, machine: "oven" }) })));
    expect(ids()).toEqual(["9", "1", "2", "3"]);
    // acknowledged elsewhere: it moves down
    act(() => stream.alerts.forEach((f) => f({ change: "acknowledged", alert: alert({ id: 9, machine: "oven", acknowledged: true, acknowledged_by: "cy" }) })));
    expect(ids()).toEqual(["1", "9", "2", "3"]);
  }, 15_000);

  it("an operator acknowledges with a comment and comments again; the thread shows them", async () => {
    history.replaceState(null, "", "#/alerts?id=1");
    let detail = { ...alert({ id: 1, sensors: [{ sensor: "oil_temp", value: 250, reason: "above 200" }] }), comments: [] as unknown[] };
    const sent = stubFetch({
      "GET /api/v1/alerts": [alert({ id: 1 })],
      "GET /api/v1/machines": [machine()],
      "GET /api/v1/alerts/1": () => detail,
      "POST /api/v1/alerts/1/acknowledge": (s) => {
        detail = {
          ...detail,
          acknowledged: true,
          acknowledged_by: "ann",
          acknowledged_at: "2026-12-03T10:06:00Z",
          comments: [{ id: 1, user: "ann", text: (s.body as { comment: string }).comment, created_at: "2026-12-03T10:06:00Z" }],
        };
        return detail;
      },
      "POST /api/v1/alerts/1/comments": (s) => {
        const c = { id: 2, user: "ann", text: (s.body as { text: string }).text, created_at: "2026-12-03T10:07:00Z" };
        detail = { ...detail, comments: [...detail.comments, c] };
        return c;
      },
    });
    renderAs("operator", <AlertsPage />);
    const panel = await screen.findByTestId("alert-detail");
    expect(await within(panel).findByTestId("alert-sensors")).toHaveTextContent("above 200");
    await userEvent.type(within(panel).getByTestId("ack-comment"), "fan replaced");
    await userEvent.click(within(panel).getByTestId("acknowledge"));
    expect(await within(panel).findByTestId("acknowledged")).toHaveTextContent("Acknowledged by ann");
    expect(sent.find((s) => s.method === "POST" && s.url.pathname.endsWith("/acknowledge"))!.body).toEqual({ comment: "fan replaced" });
    await userEvent.type(within(panel).getByTestId("comment-text"), "checked at noon{Control>}{Enter}{/Control}");
    expect(await within(panel).findAllByTestId("comment")).toHaveLength(2);
    expect(within(panel).getAllByTestId("comment")[1]).toHaveTextContent("checked at noon");
  }, 20_000);

  it("a viewer reads an alert but neither acknowledges nor comments", async () => {
    history.replaceState(null, "", "#/alerts?id=1");
    stubFetch({
      "GET /api/v1/alerts": [alert({ id: 1 })],
      "GET /api/v1/machines": [],
      "GET /api/v1/alerts/1": { ...alert({ id: 1 }), comments: [] },
    });
    renderAs("viewer", <AlertsPage />);
    expect(await screen.findByTestId("ack-forbidden")).toHaveTextContent("needs the operator role");
    expect(screen.queryByTestId("acknowledge")).not.toBeInTheDocument();
    expect(screen.queryByTestId("comment-text")).not.toBeInTheDocument();
  });

  it("asks the service with the filters", async () => {
    history.replaceState(null, "", "#/alerts?machine=press-1");
    const sent = stubFetch({ "GET /api/v1/alerts": [], "GET /api/v1/machines": [machine()] });
    renderAs("viewer", <AlertsPage />);
    expect(await screen.findByTestId("alerts-empty")).toBeInTheDocument();
    await userEvent.click(within(screen.getByTestId("filter-status")).getByText("Open"));
    await userEvent.click(within(screen.getByTestId("filter-ack")).getByText("Not yet"));
    const last = sent.filter((s) => s.url.pathname === "/api/v1/alerts").at(-1)!.url.searchParams;
    expect([last.get("machine"), last.get("status"), last.get("acknowledged")]).toEqual(["press-1", "open", "false"]);
  });
});
