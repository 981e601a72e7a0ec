import { describe, expect, it } from "vitest";
import { aligned } from "./SensorChart";

describe("aligned", () => {
  it("gives uPlot x, max, min and mean, with a break where readings are missing for over two buckets", () => {
    const s = { sensor: "t", unit: "", t: [0, 10, 20, 60], n: [1, 1, 1, 1], mean: [1, 2, 3, 4], min: [0, 1, 2, 3], max: [2, 3, 4, 5] };
    expect(aligned(s, 10)).toEqual([
      [0, 10, 20, 30, 60],
      [2, 3, 4, null, 5],
      [0, 1, 2, null, 3],
      [1, 2, 3, null, 4],
    ]);
  });
});
