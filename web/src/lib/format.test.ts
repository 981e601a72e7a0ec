import { describe, expect, it } from "vitest";
import { fmtDateTime, fmtShort, fmtTime, modelName } from "./format";

describe("one time format", () => {
  it("is year-month-day, 24 h, everywhere; shorter forms are parts of it", () => {
    const iso = new Date(2026, 0, 5, 7, 3, 9).toISOString(); // local time 2026-01-05 07:03:09
    expect(fmtDateTime(iso)).toBe("2026-01-05 07:03:09");
    expect(fmtShort(iso)).toBe("2026-01-05 07:03");
    expect(fmtTime(iso)).toBe("07:03:09");
  });
});

describe("model names", () => {
  it("drop the job number a default name ends with (the page shows the version number)", () => {
    expect(modelName("good parts 2026-12-03 #3")).toBe("good parts 2026-12-03");
    expect(modelName("line 2 #1 retrain")).toBe("line 2 #1 retrain");
  });
});
