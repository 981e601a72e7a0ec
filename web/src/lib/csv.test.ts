import { describe, expect, it } from "vitest";
import type { Inspection } from "../api/client";
import { toCsv } from "./csv";

const HEADER =
  "id,created_at,station,filename,verdict,score,normalized_score,model_id,reviewed,review_verdict,defect_type,review_note,reviewer,reviewed_at,repeat_of,latency_ms,width,height,regions";

describe("CSV export", () => {
  it("quotes what needs quoting and defuses spreadsheet formulas", () => {
    const x = {
      id: 7,
      created_at: "2026-01-01T00:00:00Z",
      station: "line1",
      filename: '=cmd|"a, b"',
      verdict: "anomalous",
      score: 1.5,
      normalized_score: 0.7,
      model_id: 2,
      reviewed: false,
      review_verdict: null,
      defect_type: null,
      review: null,
      duplicate_of: null,
      latency_ms: 3,
      width: 10,
      height: 20,
      regions: [{}, {}],
    } as unknown as Inspection;
    const lines = toCsv([x]).split("\r\n");
    expect(lines[0]).toBe(HEADER);
    expect(lines[1]).toBe(`7,2026-01-01T00:00:00Z,line1,"'=cmd|""a, b""",anomalous,1.5,0.7,2,false,,,,,,,3,10,20,2`);
  });

  it("carries the review (verdict, defect type, note, reviewer, time) and what a repeat repeats", () => {
    const x = {
      id: 9,
      created_at: "2026-01-01T00:00:00Z",
      station: "line1",
      filename: "a.png",
      verdict: "good",
      score: 0.1,
      normalized_score: 0.2,
      model_id: 2,
      reviewed: true,
      review_verdict: "anomalous",
      defect_type: "scratch",
      review: { verdict: "anomalous", defect_type: "scratch", note: "rim, 3 o'clock", reviewer: "ana", created_at: "2026-01-01T00:05:00Z" },
      duplicate_of: 4,
      latency_ms: 3,
      width: 10,
      height: 20,
      regions: [],
    } as unknown as Inspection;
    const [, row] = toCsv([x]).split("\r\n");
    expect(row).toBe(`9,2026-01-01T00:00:00Z,line1,a.png,good,0.1,0.2,2,true,anomalous,scratch,"rim, 3 o'clock",ana,2026-01-01T00:05:00Z,4,3,10,20,0`);
  });
});
