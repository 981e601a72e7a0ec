import { describe, expect, it } from "vitest";
import { areaOf, boxFromDrag, inspectedShare, pixelBoxes, type Box } from "./area";

describe("inspection area drawn in the browser", () => {
  it("a drag in any direction marks the same box, in fractions of the picture, cut to it", () => {
    const near = (box: Box | null, want: Box) => {
      expect(box).not.toBeNull();
      for (const k of ["x", "y", "w", "h"] as const) expect(box![k]).toBeCloseTo(want[k], 9);
    };
    near(boxFromDrag(10, 20, 110, 70, 200, 100), { x: 0.05, y: 0.2, w: 0.5, h: 0.5 });
    near(boxFromDrag(110, 70, 10, 20, 200, 100), { x: 0.05, y: 0.2, w: 0.5, h: 0.5 });
    near(boxFromDrag(-50, -10, 100, 50, 200, 100), { x: 0, y: 0, w: 0.5, h: 0.5 });
    near(boxFromDrag(190, 90, 400, 300, 200, 100), { x: 0.95, y: 0.9, w: 0.05, h: 0.1 });
  });

  it("a click or a sliver marks nothing", () => {
    expect(boxFromDrag(50, 50, 50, 50, 200, 100)).toBeNull();
    expect(boxFromDrag(50, 10, 51, 90, 200, 100)).toBeNull();
  });

  it("the share inspected counts overlapping boxes once", () => {
    expect(inspectedShare([])).toBe(1);
    expect(inspectedShare([{ x: 0, y: 0, w: 0.5, h: 1 }])).toBeCloseTo(0.5, 5);
    const quarter = { x: 0, y: 0, w: 0.5, h: 0.5 };
    expect(inspectedShare([quarter, quarter, { x: 0.25, y: 0, w: 0.5, h: 0.5 }])).toBeCloseTo(1 - 0.375, 5);
  });

  it("boxes in the photo's pixels cover whole pixels, at least one", () => {
    expect(pixelBoxes([{ x: 0.1, y: 0.2, w: 0.25, h: 0.5 }], 900, 600)).toEqual([{ x: 90, y: 120, w: 225, h: 300 }]);
    expect(pixelBoxes([{ x: 0.5, y: 0.5, w: 0.0001, h: 0.0001 }], 100, 100)).toEqual([{ x: 50, y: 50, w: 1, h: 1 }]);
  });
});

describe("a model's inspection area", () => {
  it("is read from its training figures, none for the whole photo", () => {
    expect(areaOf({ training: { inspect_area: { inspected: 0.81 } } })).toBe(0.81);
    expect(areaOf({ training: { seconds: 3 } })).toBeNull();
    expect(areaOf(null)).toBeNull();
  });
});
