import { describe, expect, it } from "vitest";
import { histogram, ratesAt, roc } from "./stats";

const items = [
  { label: "good", score: 1 },
  { label: "good", score: 2 },
  { label: "good", score: 3 },
  { label: "scratch", score: 2.5 },
  { label: "chip", score: 4 },
];

describe("test score charts", () => {
  it("ROC area is the share of (defective, good) pairs ranked right", () => {
    const r = roc(items);
    // pairs: 2.5 beats 1, 2 (not 3); 4 beats all three: 5 of 6
    expect(r.auc).toBeCloseTo(5 / 6);
    expect(r.fpr[0]).toBe(0);
    expect(r.fpr[r.fpr.length - 1]).toBe(1);
    expect(r.tpr[r.tpr.length - 1]).toBe(1);
  });

  it("histogram counts every image once, good and defective apart, with the threshold in range", () => {
    const h = histogram(items, 10, 5);
    expect(h.good.reduce((a, b) => a + b)).toBe(3);
    expect(h.bad.reduce((a, b) => a + b)).toBe(2);
    expect(h.centers[h.centers.length - 1] + h.width / 2).toBeCloseTo(10);
  });

  it("false alarms and misses at a threshold", () => {
    expect(ratesAt(items, 2.75)).toEqual({ falseAlarm: 1 / 3, miss: 1 / 2 });
  });
});
