import { describe, expect, it } from "vitest";
import { fmtBytes, forward } from "./Train";

const job = (id: number, progress: number, status = "running", message = "extracting features 1/2") =>
  ({ id, kind: "train", status, progress, message }) as const;

describe("training progress", () => {
  it("never goes back for the same job, names the newest phase, and starts again for another job", () => {
    const a = forward(null, job(1, 0.6, "running", "selecting the memory bank 5/5"));
    const b = forward(a, job(1, 0.3, "running", "extracting features 1/4"));
    expect(b.progress).toBe(0.6);
    expect(b.message).toBe("extracting features 1/4");
    expect(forward(b, job(2, 0.1)).progress).toBe(0.1);
    expect(forward(b, job(1, 0.2, "failed")).progress).toBe(0.2); // a finished job reports what it ended at
  });

  it("says how many bytes an upload sent", () => {
    expect(fmtBytes(512)).toBe("512 B");
    expect(fmtBytes(2048)).toBe("2.0 KB");
    expect(fmtBytes(3.5 * 1024 * 1024)).toBe("3.5 MB");
  });
});
