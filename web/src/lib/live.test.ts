import { describe, expect, it } from "vitest";
import type { Inspection } from "../api/client";
import { LiveStore, MAX_ITEMS, Ring } from "./live";

let next = 1;
function insp(over: Partial<Inspection> = {}): Inspection {
  const id = next++;
  return {
    id,
    station: "line1",
    model_id: 1,
    filename: `${id}.png`,
    image_sha256: "x",
    image_phash: "y",
    width: 10,
    height: 10,
    score: 1,
    normalized_score: 0.2,
    verdict: "good",
    regions: [],
    latency_ms: 1,
    reviewed: false,
    created_at: new Date().toISOString(),
    image_url: `/api/v1/inspections/${id}/image`,
    heatmap_url: `/api/v1/inspections/${id}/heatmap`,
    overlay_url: `/api/v1/inspections/${id}/overlay`,
    ...over,
  } as Inspection;
}

describe("Ring", () => {
  it("keeps the newest `capacity` items, newest first", () => {
    const r = new Ring<number>(3);
    [1, 2, 3, 4, 5].forEach((x) => r.push(x));
    expect(r.size).toBe(3);
    expect([r.at(0), r.at(1), r.at(2), r.at(3)]).toEqual([5, 4, 3, undefined]);
  });
});

describe("LiveStore", () => {
  it("stays bounded however many inspections arrive (an hour at 20 per second)", () => {
    const s = new LiveStore();
    for (let i = 0; i < 72_000; i++) s.add(insp({ verdict: i % 10 === 0 ? "anomalous" : "good" }));
    expect(s.items.size).toBe(MAX_ITEMS);
    expect(s.ids.size).toBeLessThanOrEqual(MAX_ITEMS * 2);
    const all = s.statsFor(null);
    expect(all.passed + all.failed).toBe(72_000);
    expect(all.failed).toBe(7_200);
    expect(all.buckets.length).toBeLessThanOrEqual(62);
    expect(s.statsFor("line1").failed).toBe(7_200);
  });

  it("counts per station, ignores duplicates, and seeds history without counting it", () => {
    const s = new LiveStore();
    const a = insp({ station: "a", verdict: "anomalous" });
    s.add(a);
    s.add(a);
    s.add(insp({ station: "b" }));
    expect(s.statsFor("a")).toMatchObject({ passed: 0, failed: 1 });
    expect(s.statsFor("b")).toMatchObject({ passed: 1, failed: 0 });
    s.add(insp({ station: "b", duplicate_of: a.id }));
    expect(s.statsFor("b")).toMatchObject({ passed: 1, failed: 0 }); // a repeat is listed, not counted
    expect(s.duplicates).toBe(1);
    const old = [insp({ id: 0 }), insp({ id: -1 })];
    s.seed(old);
    expect(s.items.size).toBe(5);
    expect(s.items.at(s.items.size - 1)!.id).toBe(-1); // oldest last
    expect(s.statsFor(null).passed + s.statsFor(null).failed).toBe(2);
    expect(s.statsFor(null).buckets.reduce((n, b) => n + b.total, 0)).toBe(4);
  });

  it("tells listeners at most a few times a second", async () => {
    const s = new LiveStore();
    let calls = 0;
    s.subscribe(() => calls++);
    for (let i = 0; i < 100; i++) s.add(insp());
    expect(calls).toBe(0);
    await new Promise((r) => setTimeout(r, 300));
    expect(calls).toBe(1);
  });
});

describe("EventStream", () => {
  it("gives up and signs out when the service refuses the token (4401), reconnects after other drops", async () => {
    const sockets: FakeSocket[] = [];
    class FakeSocket {
      onmessage: ((m: { data: string }) => void) | null = null;
      onclose: ((e: { code: number }) => void) | null = null;
      constructor(readonly url: string) {
        sockets.push(this);
      }
      close() {}
    }
    const real = globalThis.WebSocket;
    (globalThis as unknown as { WebSocket: unknown }).WebSocket = FakeSocket;
    try {
      const { EventStream } = await import("./live");
      let signedOut = 0;
      const s = new EventStream("tok", () => signedOut++, "ws://x/api/v1/events");
      expect(sockets[0].url).toBe("ws://x/api/v1/events?token=tok");
      sockets[0].onmessage!({ data: JSON.stringify({ type: "hello" }) });
      expect(s.state).toBe("open");
      sockets[0].onclose!({ code: 1006 });
      expect(s.state).toBe("lost");
      await new Promise((r) => setTimeout(r, 600));
      expect(sockets.length).toBe(2); // tried again
      sockets[1].onmessage!({ data: JSON.stringify({ type: "hello" }) });
      expect(s.state).toBe("open");
      sockets[1].onclose!({ code: 4401 });
      expect(signedOut).toBe(1);
      await new Promise((r) => setTimeout(r, 600));
      expect(sockets.length).toBe(2);
      s.close();
    } finally {
      (globalThis as unknown as { WebSocket: unknown }).WebSocket = real;
    }
  });
});
