import { MantineProvider } from "@mantine/core";
import { render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Inspection, Role } from "../api/client";
import { LiveStore } from "../lib/live";
import { SessionContext, type Session } from "../lib/session";
import { SimilarStrip } from "./SimilarStrip";

const region = { x: 10, y: 5, width: 20, height: 10, area: 150, max_score: 0.91, mean_score: 0.7 };
function insp(id: number, extra: Partial<Inspection> = {}): Inspection {
  return {
    id,
    station: "line1",
    model_id: 1,
    filename: "a.png",
    image_sha256: "s",
    image_phash: "p",
    width: 100,
    height: 50,
    score: 12.5,
    normalized_score: 0.62,
    verdict: "anomalous",
    regions: [region, { ...region, x: 60 }],
    latency_ms: 12,
    reviewed: false,
    created_at: "2026-01-01T08:00:00Z",
    image_url: `/api/v1/inspections/${id}/image`,
    heatmap_url: `/api/v1/inspections/${id}/heatmap`,
    overlay_url: `/api/v1/inspections/${id}/overlay`,
    ...extra,
  } as Inspection;
}

function session(role: Role): Session {
  return {
    me: { name: "ann", role },
    stream: { store: new LiveStore(), jobs: new Set() } as unknown as Session["stream"],
    stations: [],
    reloadStations: async () => {},
    station: null,
    setStation: () => {},
    logout: () => {},
  };
}

type Answer = { status: number; body: unknown };
function service(similar: () => Answer) {
  const calls: { url: string; method: string }[] = [];
  const fetch = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const req = input instanceof Request ? input : new Request(new URL(String(input), location.origin), init);
    calls.push({ url: req.url, method: req.method });
    const json = (b: unknown, status = 200) => new Response(JSON.stringify(b), { status, headers: { "Content-Type": "application/json" } });
    if (req.url.includes("/similar")) {
      const a = similar();
      return json(a.body, a.status);
    }
    if (req.url.endsWith("/search/backfill")) return json({ id: 9, kind: "embed", status: "queued", progress: 0, message: "" }, 202);
    if (req.url.endsWith("/jobs/9")) return json({ id: 9, kind: "embed", status: "running", progress: 0.4, message: "40 of 100" });
    return new Response(new Uint8Array([255, 216]), { status: 200, headers: { "Content-Type": "image/jpeg" } });
  });
  vi.stubGlobal("fetch", fetch);
  URL.createObjectURL = vi.fn(() => "blob:x");
  return calls;
}

function show(role: Role) {
  render(
    <MantineProvider env="test">
      <SessionContext.Provider value={session(role)}>
        <SimilarStrip x={insp(7)} />
      </SessionContext.Provider>
    </MantineProvider>,
  );
}

describe("SimilarStrip", () => {
  afterEach(() => vi.unstubAllGlobals());

  it("lists the matches, each a link to its page, searching the same station's past by default", async () => {
    const calls = service(() => ({
      status: 200,
      body: [
        { similarity: 0.934, region: 0, box: [10, 5, 20, 10], thumbnail_url: "/api/v1/inspections/3/thumbnail", inspection: insp(3, { reviewed: true, defect_type: "scratch" }) },
        { similarity: 0.71, region: null, box: null, thumbnail_url: "/api/v1/inspections/2/thumbnail", inspection: insp(2, { duplicate_of: 1, duplicate_kind: "near" }) },
      ],
    }));
    show("viewer");
    expect(screen.getByTestId("similar-loading")).toBeInTheDocument();
    const items = await screen.findAllByTestId("similar-item");
    expect(items).toHaveLength(2);
    expect(items[0]).toHaveAttribute("href", "#/inspections/3");
    expect(items[0]).toHaveTextContent("0.93");
    await vi.waitFor(() => expect(items[0]).toHaveTextContent("scratch")); // its review's defect type
    expect(items[1]).toHaveTextContent("repeat");
    const url = new URL(calls.find((c) => c.url.includes("/similar"))!.url);
    expect(url.pathname).toBe("/api/v1/inspections/7/similar");
    expect(url.searchParams.get("k")).toBe("8");
    expect(url.searchParams.get("station")).toBe("line1");
    expect(url.searchParams.get("until")).toBe("2026-01-01T08:00:00Z");
    expect(url.searchParams.get("verdict")).toBe("anomalous"); // similar past defects: defects only
    // any station, then one region
    await userEvent.click(screen.getByText("Any station"));
    await vi.waitFor(() => expect(calls.filter((c) => c.url.includes("/similar")).length).toBe(2));
    expect(new URL(calls.filter((c) => c.url.includes("/similar"))[1].url).searchParams.get("station")).toBeNull();
  });

  it("says so when nothing looks alike", async () => {
    service(() => ({ status: 200, body: [] }));
    show("viewer");
    expect(await screen.findByTestId("similar-empty")).toHaveTextContent("No earlier inspection of line1");
  });

  it("409: no search vectors; an engineer starts the backfill and sees its progress", async () => {
    const calls = service(() => ({ status: 409, body: { detail: "inspection 7 has no search vectors" } }));
    show("engineer");
    expect(await screen.findByTestId("similar-no-vectors")).toHaveTextContent("backfill");
    await userEvent.click(screen.getByTestId("backfill"));
    expect(await screen.findByTestId("backfill-job")).toHaveTextContent("Backfill job #9");
    expect(calls.some((c) => c.method === "POST" && c.url.endsWith("/search/backfill"))).toBe(true);
  });

  it("409 for a viewer: told an engineer can run the backfill, no button", async () => {
    service(() => ({ status: 409, body: { detail: "no vectors" } }));
    show("viewer");
    expect(await screen.findByTestId("similar-no-vectors")).toHaveTextContent("An engineer can run the backfill");
    expect(screen.queryByTestId("backfill")).not.toBeInTheDocument();
  });

  it("other errors: the message and a retry", async () => {
    let n = 0;
    service(() => (n++ === 0 ? { status: 500, body: {} } : { status: 200, body: [] }));
    show("viewer");
    expect(await screen.findByTestId("similar-error")).toHaveTextContent("unavailable");
    await userEvent.click(screen.getByRole("button", { name: "Try again" }));
    expect(await screen.findByTestId("similar-empty")).toBeInTheDocument();
  });
});
