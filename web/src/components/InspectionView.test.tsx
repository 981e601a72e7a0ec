import { MantineProvider } from "@mantine/core";
import { render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Inspection, Role } from "../api/client";
import { LiveStore } from "../lib/live";
import { SessionContext, type Session } from "../lib/session";
import { InspectionView } from "./InspectionView";

const x = {
  id: 5,
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
  regions: [{ x: 10, y: 5, width: 20, height: 10, area: 150, max_score: 0.91, mean_score: 0.7 }],
  latency_ms: 12,
  reviewed: false,
  created_at: "2026-01-01T08:00:00Z",
  image_url: "/api/v1/inspections/5/image",
  heatmap_url: "/api/v1/inspections/5/heatmap",
  overlay_url: "/api/v1/inspections/5/overlay",
} as Inspection;

function session(role: Role): Session {
  return {
    me: { name: "ann", role },
    stream: { store: new LiveStore() } as unknown as Session["stream"],
    stations: [],
    reloadStations: async () => {},
    station: null,
    setStation: () => {},
    logout: () => {},
  };
}

// what the service answers: the model, image bytes, the review
function service(suggestion: unknown = { defect_type: null, confidence: 0, votes: {}, neighbours: 0 }, reviews: unknown[] = []) {
  const calls: { url: string; method: string; body?: string }[] = [];
  const fetch = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const req = input instanceof Request ? input : new Request(new URL(String(input), location.origin), init);
    const body = req.method === "POST" ? await req.text() : undefined;
    calls.push({ url: req.url, method: req.method, body });
    const json = (b: unknown, status = 200) => new Response(JSON.stringify(b), { status, headers: { "Content-Type": "application/json" } });
    if (req.url.endsWith("/models/1")) return json({ id: 1, name: "demo", method: "patchcore", backbone: "b", image_size: 128, threshold: 10 });
    if (req.url.endsWith("/reviews")) return req.method === "POST" ? json({ id: 1 }, 201) : json(reviews);
    if (req.url.endsWith("/suggestion")) return json(suggestion);
    return new Response(new Uint8Array([137, 80, 78, 71]), { status: 200, headers: { "Content-Type": "image/png" } });
  });
  vi.stubGlobal("fetch", fetch);
  URL.createObjectURL = vi.fn(() => "blob:x");
  return calls;
}

function show(role: Role, onReviewed = vi.fn(), part: Inspection = x) {
  render(
    <MantineProvider env="test">
      <SessionContext.Provider value={session(role)}>
        <InspectionView x={part} onReviewed={onReviewed} />
      </SessionContext.Provider>
    </MantineProvider>,
  );
  return onReviewed;
}

describe("InspectionView", () => {
  afterEach(() => vi.unstubAllGlobals());

  it("shows scores against the threshold, the regions and the heatmap, and toggles it with H", async () => {
    service();
    show("viewer");
    expect(screen.getByTestId("normalized-score")).toHaveTextContent("0.620 (threshold 0.500)");
    expect(await screen.findByText(/12\.5000 \(threshold 10\.0000\)/)).toBeInTheDocument();
    expect(screen.getByTestId("regions")).toHaveTextContent("0.910");
    expect(await screen.findByTestId("heatmap")).toBeInTheDocument();
    await userEvent.keyboard("h");
    expect(screen.queryByTestId("heatmap")).not.toBeInTheDocument();
    expect(screen.queryByTestId("review-form")).not.toBeInTheDocument(); // a viewer does not review
  });

  it("reviews from the keyboard: 2 picks a defect type, Ctrl+Enter saves", async () => {
    const calls = service();
    const onReviewed = show("operator");
    await userEvent.keyboard("2");
    await userEvent.keyboard("{Control>}{Enter}{/Control}");
    await vi.waitFor(() => expect(onReviewed).toHaveBeenCalled());
    const review = calls.find((c) => c.url.endsWith("/inspections/5/reviews") && c.method === "POST")!;
    expect(JSON.parse(review.body!)).toEqual({ verdict: "anomalous", defect_type: "spot", note: "" });
    expect(await screen.findByTestId("review-done")).toHaveTextContent("Verdict confirmed as spot.");
  });

  it("O overturns the verdict", async () => {
    const calls = service();
    show("operator");
    await userEvent.keyboard("o");
    await vi.waitFor(() => expect(calls.some((c) => c.url.endsWith("/reviews") && c.method === "POST")).toBe(true));
    expect(JSON.parse(calls.find((c) => c.url.endsWith("/reviews") && c.method === "POST")!.body!).verdict).toBe("good");
  });

  it("shows the suggested defect type; A accepts it: defective, that type, saved", async () => {
    const calls = service({ defect_type: "scratch", confidence: 0.82, votes: { scratch: 0.82, dent: 0.18 }, neighbours: 5 });
    const onReviewed = show("operator");
    const chip = await screen.findByTestId("suggestion");
    expect(chip).toHaveTextContent("scratch");
    expect(chip).toHaveTextContent("82 % likely");
    expect(chip).toHaveTextContent("5 reviewed look-alikes voted");
    expect(chip.getAttribute("title")).not.toContain("learned");
    await userEvent.keyboard("a");
    await vi.waitFor(() => expect(onReviewed).toHaveBeenCalled());
    const review = calls.find((c) => c.url.endsWith("/inspections/5/reviews") && c.method === "POST")!;
    expect(JSON.parse(review.body!)).toEqual({ verdict: "anomalous", defect_type: "scratch", note: "" });
    expect(await screen.findByTestId("review-done")).toHaveTextContent("as scratch.");
  });

  it("says when the look-alikes were found with a similarity learned from the station's reviews", async () => {
    service({ defect_type: "dent", confidence: 0.7, votes: { dent: 1 }, neighbours: 5, learned_from: 42 });
    show("operator");
    const chip = await screen.findByTestId("suggestion");
    expect(chip.getAttribute("title")).toContain("learned from this station's 42 reviewed defects");
  });

  it("no chip and A does nothing when no reviewed look-alike is near", async () => {
    const calls = service();
    const onReviewed = show("operator");
    await vi.waitFor(() => expect(calls.some((c) => c.url.endsWith("/suggestion"))).toBe(true));
    await userEvent.keyboard("a");
    expect(screen.queryByTestId("suggestion")).not.toBeInTheDocument();
    expect(onReviewed).not.toHaveBeenCalled();
    expect(calls.some((c) => c.url.endsWith("/reviews") && c.method === "POST")).toBe(false);
  });

  it("offers no suggestion for a passing part, and A does not make it defective", async () => {
    const calls = service({ defect_type: "contamination", confidence: 0.6, votes: { contamination: 1 }, neighbours: 1 });
    const onReviewed = show("operator", vi.fn(), { ...x, verdict: "good", normalized_score: 0.3, regions: [] });
    await vi.waitFor(() => expect(calls.some((c) => c.url.endsWith("/suggestion"))).toBe(true));
    await userEvent.keyboard("a");
    expect(screen.queryByTestId("suggestion")).not.toBeInTheDocument();
    expect(onReviewed).not.toHaveBeenCalled();
    expect(calls.some((c) => c.method === "POST")).toBe(false);
  });

  it("accepting a suggestion that overturns a reviewed pass asks first", async () => {
    const calls = service({ defect_type: "scratch", confidence: 0.6, votes: { scratch: 1 }, neighbours: 2 });
    const onReviewed = show("operator", vi.fn(), { ...x, reviewed: true, review_verdict: "good" });
    await screen.findByTestId("suggestion");
    await userEvent.keyboard("a");
    expect(await screen.findByTestId("suggestion-confirm")).toHaveTextContent("Save it as defective (scratch)?");
    expect(calls.some((c) => c.method === "POST")).toBe(false);
    await userEvent.click(screen.getByRole("button", { name: "Save as defect" }));
    await vi.waitFor(() => expect(onReviewed).toHaveBeenCalled());
    expect(JSON.parse(calls.find((c) => c.method === "POST")!.body!)).toEqual({ verdict: "anomalous", defect_type: "scratch", note: "" });
  });

  it("shows the review history and the reviewed verdict beside the model's", async () => {
    service(undefined, [
      { id: 1, inspection_id: 5, reviewer_id: 2, reviewer: "ben", verdict: "good", defect_type: null, note: "dust", created_at: "2026-01-01T08:01:00Z" },
      { id: 2, inspection_id: 5, reviewer_id: 3, reviewer: "ann", verdict: "good", defect_type: null, note: "checked by hand", created_at: "2026-01-01T08:02:00Z" },
    ]);
    show("viewer", vi.fn(), { ...x, reviewed: true, review_verdict: "good" });
    const entries = await screen.findAllByTestId("review-entry");
    expect(entries).toHaveLength(2);
    expect(entries[0]).toHaveTextContent("ann");
    expect(entries[0]).toHaveTextContent("checked by hand");
    expect(entries[1]).toHaveTextContent("ben");
    expect(screen.getAllByTestId("verdict")[0]).toHaveTextContent("Pass");
    expect(screen.getAllByTestId("review-outcome")[0]).toHaveTextContent("overturned");
  });

  it("draws a passing part's regions as below the threshold, not as defects", () => {
    service();
    show("viewer", vi.fn(), { ...x, verdict: "good", normalized_score: 0.4 });
    expect(screen.getByTestId("region-boxes")).toHaveAttribute("data-kind", "below-threshold");
    expect(screen.getByTestId("regions-below-threshold")).toBeInTheDocument();
  });

  it("marks a repeated upload", () => {
    service();
    render(
      <MantineProvider env="test">
        <SessionContext.Provider value={session("viewer")}>
          <InspectionView x={{ ...x, duplicate_of: 2, duplicate_kind: "exact" }} />
        </SessionContext.Provider>
      </MantineProvider>,
    );
    expect(screen.getByTestId("duplicate-badge")).toHaveTextContent("repeat");
    expect(screen.getByTestId("duplicate-of")).toHaveTextContent("#2 (exact copy");
  });
});
