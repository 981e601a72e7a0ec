import { describe, expect, it } from "vitest";
import type { Inspection } from "../api/client";
import { toCsv } from "./csv";

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
      latency_ms: 3,
      width: 10,
      height: 20,
      regions: [{}, {}],
    } as unknown as Inspection;
    const lines = toCsv([x]).split("\r\n");
    expect(lines[0]).toBe(
      "id,created_at,station,filename,verdict,score,normalized_score,model_id,reviewed,latency_ms,width,height,regions",
    );
    expect(lines[1]).toBe(`7,2026-01-01T00:00:00Z,line1,"'=cmd|""a, b""",anomalous,1.5,0.7,2,false,3,10,20,2`);
  });
});
