import { describe, expect, it } from "vitest";
import { filtersFrom, filtersQuery } from "./History";

describe("History filters in the address", () => {
  it("round-trip through the query string, ignoring values the page does not offer", () => {
    const f = { verdict: "anomalous", reviewed: "no", since: "2026-12-01T08:00", until: "" };
    expect(filtersQuery(f)).toBe("verdict=anomalous&reviewed=no&since=2026-12-01T08%3A00");
    expect(filtersFrom(new URLSearchParams(filtersQuery(f)))).toEqual(f);
    expect(filtersFrom(new URLSearchParams("verdict=maybe&reviewed=yes"))).toEqual({ verdict: null, reviewed: "yes", since: "", until: "" });
    expect(filtersQuery(filtersFrom(new URLSearchParams("")))).toBe(""); // no filter: "Clear filters" has nothing to clear
  });
});
