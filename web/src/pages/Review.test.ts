import { describe, expect, it } from "vitest";
import type { Inspection } from "../api/client";
import { reviewOrder } from "./Review";

describe("review queue order", () => {
  it("puts the most uncertain (score nearest the threshold) first", () => {
    const xs = [0.1, 0.56, 0.95, 0.45, 0.5].map((s, i) => ({ id: i + 1, normalized_score: s }) as Inspection);
    expect(reviewOrder(xs).map((x) => x.normalized_score)).toEqual([0.5, 0.45, 0.56, 0.1, 0.95]);
  });
});
