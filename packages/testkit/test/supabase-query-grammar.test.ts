import { describe, expect, it } from "vitest";
import { ApiError } from "../src/supabase/errors.js";
import { ParseFailure, parseFilterValue, parseOrder, parseSelect } from "../src/supabase/query-grammar.js";
import { parseQueryParams } from "../src/supabase/query-params.js";
import { negotiateMedia, parsePrefer } from "../src/supabase/request-headers.js";

/** The PGRST127 refusal of a PostgREST feature the gateway leaves out. */
function refusal(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    if (error instanceof ApiError && error.body.code === "PGRST127") return error.body.details ?? "";
    throw error;
  }
  throw new Error("expected a PGRST127 refusal");
}

function failure(run: () => unknown): ParseFailure {
  try {
    run();
  } catch (error) {
    if (error instanceof ParseFailure) return error;
    throw error;
  }
  throw new Error("expected a parse failure");
}

describe("filter values", () => {
  it("splits in-lists on commas outside quotes, with backslash escapes", () => {
    expect(parseFilterValue('in.(a,"b,c","d(e)",x"y,"q\\"r",1)').operation).toEqual({
      kind: "in",
      values: ["a", "b,c", "d(e)", 'x"y', 'q"r', "1"],
    });
    expect(parseFilterValue("in.()").operation).toEqual({ kind: "in", values: [] });
    expect(parseFilterValue('in.("")').operation).toEqual({ kind: "in", values: [""] });
    expect(parseFilterValue("not.in.(1)")).toEqual({
      negated: true,
      operation: { kind: "in", values: ["1"] },
    });
  });

  it("reads is.null and the comparisons; the value is the rest of the text", () => {
    expect(parseFilterValue("is.NULL").operation).toEqual({ kind: "is_null" });
    expect(parseFilterValue("not.is.null")).toEqual({ negated: true, operation: { kind: "is_null" } });
    expect(parseFilterValue("eq.a.b,c)").operation).toEqual({ kind: "op", op: "eq", value: "a.b,c)" });
    expect(parseFilterValue("not.eq.null")).toEqual({
      negated: true,
      operation: { kind: "op", op: "eq", value: "null" },
    });
  });

  it("refuses PostgREST operators it leaves out with PGRST127", () => {
    expect(refusal(() => parseFilterValue("like.*bot*"))).toBe(
      "The filter operator 'like' is not supported by the local gateway",
    );
    expect(refusal(() => parseFilterValue("not.fts(english).cat"))).toMatch(/'fts\(english\)'/);
    expect(refusal(() => parseFilterValue("eq(any).{1,2}"))).toMatch(/'eq\(any\)'/);
    expect(refusal(() => parseFilterValue("cs.{a}"))).toMatch(/'cs'/);
    expect(refusal(() => parseFilterValue("is.true"))).toBe(
      "'is.true' is not supported by the local gateway; only is.null is",
    );
  });

  it("reports PostgREST's column and reason", () => {
    expect(failure(() => parseFilterValue("noop.0"))).toMatchObject({
      column: 6,
      details: "unknown single value operator noop",
    });
    expect(failure(() => parseFilterValue("not.foo.1"))).toMatchObject({
      column: 9,
      details: "unknown single value operator foo",
    });
    expect(failure(() => parseFilterValue("5"))).toMatchObject({ column: 1 });
  });
});

describe("select and order", () => {
  it("parses columns, * and quoted names", () => {
    expect(parseSelect('*, name, "x\\"y", "Mixed Case"')).toEqual([
      { kind: "star" },
      { kind: "column", name: "name" },
      { kind: "column", name: 'x"y' },
      { kind: "column", name: "Mixed Case" },
    ]);
  });

  it("refuses renames, casts and JSON paths with PGRST127", () => {
    expect(refusal(() => parseSelect("n:name"))).toMatch(/^Renaming/);
    expect(refusal(() => parseSelect("age::text"))).toMatch(/^Casts/);
    expect(refusal(() => parseSelect("data->>lang"))).toMatch(/^JSON paths/);
  });

  it("refuses embedding with PGRST127 rather than answering wrongly", () => {
    expect(() => parseSelect("id, clients(*)")).toThrow(ApiError);
    expect(() => parseSelect("id, clients!inner(id)")).toThrow(/Feature not implemented/);
  });

  it("parses order terms", () => {
    expect(parseOrder("a.desc.nullslast, b, c.asc")).toEqual([
      { column: "a", direction: "desc", nulls: "last" },
      { column: "b" },
      { column: "c", direction: "asc" },
    ]);
    expect(failure(() => parseOrder("id.ac"))).toMatchObject({ column: 4 });
    expect(refusal(() => parseOrder("data->>k.asc"))).toMatch(/^JSON paths/);
  });
});

describe("query parameters", () => {
  it("separates reserved names, filters and the gateway's apikey", () => {
    const params = parseQueryParams(
      [
        ["select", "a"],
        ["apikey", "k"],
        ["limit", "5"],
        ["offset", "x"],
        ["age", "gt.3"],
        ["order", "a"],
      ],
      false,
    );
    expect(params.select).toEqual([{ kind: "column", name: "a" }]);
    expect(params.filters).toEqual([
      { column: "age", negated: false, operation: { kind: "op", op: "gt", value: "3" } },
    ]);
    expect([params.limit, params.offset]).toEqual([5, undefined]);
    expect(() => parseQueryParams([["name", "supabot"]], false)).toThrow(ApiError);
  });

  it("refuses or/and trees and any rpc parameter but the apikey", () => {
    expect(refusal(() => parseQueryParams([["or", "(a.eq.1,b.eq.2)"]], false))).toMatch(/^'or' filters/);
    expect(refusal(() => parseQueryParams([["not.and", "(a.eq.1)"]], false))).toMatch(/^'not.and' filters/);
    expect(parseQueryParams([["apikey", "k"]], true).filters).toEqual([]);
    expect(refusal(() => parseQueryParams([["name", "supabot"]], true))).toMatch(/^Query parameters on rpc/);
  });
});

describe("headers", () => {
  it("parses Prefer: first occurrence wins, unknown preferences are ignored", () => {
    expect(
      parsePrefer(["return=representation, tx=rollback", "return=minimal,resolution=merge-duplicates"]),
    ).toEqual({ return: "representation", resolution: "merge-duplicates" });
    expect(parsePrefer("shiny=yes, handling=lenient")).toEqual({});
  });

  it("refuses the preferences it does not act on", () => {
    for (const pref of [
      "count=exact",
      "count=planned",
      "missing=default",
      "handling=strict",
      "timezone=America/Mexico_City",
      "return=headers-only",
      "resolution=ignore-duplicates",
    ]) {
      expect(refusal(() => parsePrefer(`return=minimal, ${pref}`))).toBe(
        `Prefer: ${pref} is not supported by the local gateway`,
      );
    }
  });

  it("negotiates Accept: JSON or the singular object, nothing else", () => {
    expect(negotiateMedia(undefined)).toBe("json");
    expect(negotiateMedia("text/csv;q=0.9, application/vnd.pgrst.object+json")).toBe("object");
    expect(negotiateMedia("application/json")).toBe("json");
    expect(() => negotiateMedia("text/csv")).toThrow(ApiError);
    expect(() => negotiateMedia("application/vnd.pgrst.array+json;nulls=stripped")).toThrow(ApiError);
  });
});
