import { MantineProvider } from "@mantine/core";
import { fireEvent, render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Inspection, Role } from "../api/client";
import { LiveStore } from "../lib/live";
import { SessionContext, type Session } from "../lib/session";
import SearchPage from "./Search";

const match = {
  similarity: 0.8766,
  region: 0,
  box: [10, 5, 20, 10],
  thumbnail_url: "/api/v1/inspections/3/thumbnail",
  inspection: {
    id: 3,
    station: "line1",
    model_id: 1,
    filename: "a.png",
    width: 100,
    height: 50,
    verdict: "anomalous",
    regions: [],
    reviewed: true,
    created_at: "2026-01-01T08:00:00Z",
    image_url: "/api/v1/inspections/3/image",
    heatmap_url: "/api/v1/inspections/3/heatmap",
    overlay_url: "/api/v1/inspections/3/overlay",
  } as unknown as Inspection,
};

function session(role: Role): Session {
  return {
    me: { name: "ann", role },
    stream: { store: new LiveStore(), jobs: new Set() } as unknown as Session["stream"],
    stations: [
      { id: 1, name: "line1", active_model_id: 1, created_at: "" },
      { id: 2, name: "line2", active_model_id: null, created_at: "" },
    ],
    reloadStations: async () => {},
    station: null,
    setStation: () => {},
    logout: () => {},
  };
}

function show(role: Role) {
  render(
    <MantineProvider env="test">
      <SessionContext.Provider value={session(role)}>
        <SearchPage />
      </SessionContext.Provider>
    </MantineProvider>,
  );
}

describe("SearchPage", () => {
  afterEach(() => vi.unstubAllGlobals());

  it("uploads the chosen image with the station and filters, and shows the matches with heatmaps", async () => {
    const calls: { url: string; form?: FormData }[] = [];
    vi.stubGlobal(
      "fetch",
      vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
        const url = String(input instanceof Request ? input.url : input);
        calls.push({ url, form: init?.body as FormData | undefined });
        if (url.startsWith("/api/v1/search")) return new Response(JSON.stringify([match]), { status: 200, headers: { "Content-Type": "application/json" } });
        return new Response(new Uint8Array([1]), { status: 200, headers: { "Content-Type": "image/png" } });
      }),
    );
    URL.createObjectURL = vi.fn(() => "blob:x");
    URL.revokeObjectURL = vi.fn();
    show("operator");
    expect(screen.getByTestId("search-submit")).toBeDisabled();
    const file = new File([new Uint8Array([137, 80, 78, 71])], "part.png", { type: "image/png" });
    await userEvent.upload(screen.getByLabelText("Image to search by"), file);
    expect(await screen.findByTestId("search-preview")).toBeInTheDocument();
    await userEvent.click(screen.getByRole("textbox", { name: "Verdict" }));
    await userEvent.click(await screen.findByRole("option", { name: "Defect" }));
    await userEvent.click(screen.getByTestId("search-submit"));
    const result = await screen.findByTestId("search-result");
    expect(result).toHaveTextContent("#3");
    expect(result).toHaveTextContent("0.877");
    expect(await screen.findByTestId("result-heatmap")).toBeInTheDocument();
    const sent = calls.find((c) => c.url.startsWith("/api/v1/search"))!;
    const q = new URL(sent.url, location.origin).searchParams;
    expect(q.get("model_station")).toBe("line1"); // the one station with an active model
    expect(q.get("verdict")).toBe("anomalous");
    expect((sent.form!.get("file") as File).name).toBe("part.png");
    expect(screen.getByTestId("search-count")).toHaveTextContent("1 match");
  });

  it("shows the service's error", async () => {
    vi.stubGlobal(
      "fetch",
      vi.fn(async () => new Response(JSON.stringify({ detail: "the active model of station 'line1' gives no search vectors" }), { status: 409 })),
    );
    URL.createObjectURL = vi.fn(() => "blob:x");
    URL.revokeObjectURL = vi.fn();
    show("operator");
    await userEvent.upload(screen.getByLabelText("Image to search by"), new File([new Uint8Array([1])], "p.png", { type: "image/png" }));
    await userEvent.click(screen.getByTestId("search-submit"));
    expect(await screen.findByTestId("search-error")).toHaveTextContent("gives no search vectors");
  });

  it("a viewer sees the page but cannot upload", () => {
    show("viewer");
    expect(screen.getByTestId("search-forbidden")).toHaveTextContent("needs the operator role");
    expect(screen.queryByLabelText("Image to search by")).not.toBeInTheDocument();
  });

  it("takes an image dropped on it, and refuses other files", async () => {
    URL.createObjectURL = vi.fn(() => "blob:x");
    URL.revokeObjectURL = vi.fn();
    show("operator");
    const zone = screen.getByTestId("search-drop");
    fireEvent.drop(zone, { dataTransfer: { files: [new File(["x"], "notes.txt", { type: "text/plain" })] } });
    expect(await screen.findByTestId("search-error")).toHaveTextContent("Choose an image file");
    fireEvent.drop(zone, { dataTransfer: { files: [new File([new Uint8Array([1])], "part.jpg", { type: "image/jpeg" })] } });
    expect(await screen.findByTestId("search-preview")).toBeInTheDocument();
    expect(screen.queryByTestId("search-error")).not.toBeInTheDocument();
    expect(screen.getByTestId("search-submit")).toBeEnabled();
  });
});
