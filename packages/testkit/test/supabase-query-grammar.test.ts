import { describe, expect, it } from "vitest";
import { ApiError } from "../src/supabase/errors.js";
import {
  ParseFailure,
  parseFilterValue,
  parseLogicTree,
  parseOrder,
  parseSelect,
} from "../src/supabase/query-grammar.js";
import { parseQueryParams } from "../src/supabase/query-params.js";
import { negotiateMedia, parsePrefer, parseRange } from "../src/supabase/request-headers.js";

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

  it("reads is, fts and plain operators; the value is the rest of the text", () => {
    expect(parseFilterValue("is.NULL").operation).toEqual({ kind: "is", value: "null" });
    expect(parseFilterValue("is.not_null").operation).toEqual({ kind: "is", value: "not_null" });
    expect(parseFilterValue("fts(english).cat & dog").operation).toEqual({
      kind: "fts",
      op: "fts",
      language: "english",
      value: "cat & dog",
    });
    expect(parseFilterValue("eq.a.b,c)").operation).toEqual({ kind: "op", op: "eq", value: "a.b,c)" });
    expect(parseFilterValue("not.eq.null")).toEqual({
      negated: true,
      operation: { kind: "op", op: "eq", value: "null" },
    });
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

describe("logic trees", () => {
  it("nests and/or/not with quoted values and array literals", () => {
    const tree = parseLogicTree(
      'or(a.eq.1,and(b.in.(1,2),c.not.like."x,y"),d.cs.{1,2},not.and(e.is.null,f.gt.0))',
    );
    expect(tree).toMatchObject({
      kind: "expr",
      op: "or",
      negated: false,
      children: [
        { kind: "filter", filter: { field: { name: "a" }, operation: { op: "eq", value: "1" } } },
        {
          kind: "expr",
          op: "and",
          children: [
            { filter: { operation: { kind: "in", values: ["1", "2"] } } },
            { filter: { negated: true, operation: { op: "like", value: "x,y" } } },
          ],
        },
        { filter: { operation: { op: "cs", value: "{1,2}" } } },
        { kind: "expr", op: "and", negated: true },
      ],
    });
  });

  it("rejects an empty or unknown tree", () => {
    expect(failure(() => parseLogicTree("or()"))).toMatchObject({ column: 4 });
    expect(failure(() => parseLogicTree("or(id.eq.1,not.xor(id.eq.2))")).column).toBeGreaterThan(10);
  });
});

describe("select and order", () => {
  it("parses aliases, casts, JSON paths and quoted names", () => {
    expect(parseSelect('*, n:name, age::text, data->a->>"b c", d->0, "x\\"y"')).toEqual([
      { kind: "star" },
      { kind: "field", field: { name: "name", path: [] }, alias: "n" },
      { kind: "field", field: { name: "age", path: [] }, cast: "text" },
      {
        kind: "field",
        field: {
          name: "data",
          path: [
            { arrow: "->", key: "a", isIndex: false },
            { arrow: "->>", key: "b c", isIndex: false },
          ],
        },
      },
      { kind: "field", field: { name: "d", path: [{ arrow: "->", key: "0", isIndex: true }] } },
      { kind: "field", field: { name: 'x"y', path: [] } },
    ]);
  });

  it("refuses embedding with PGRST127 rather than answering wrongly", () => {
    expect(() => parseSelect("id, clients(*)")).toThrow(ApiError);
    expect(() => parseSelect("id, c:clients!inner(id)")).toThrow(/Feature not implemented/);
  });

  it("parses order terms", () => {
    expect(parseOrder("a.desc.nullslast, b, c->>k.asc")).toEqual([
      { field: { name: "a", path: [] }, direction: "desc", nulls: "last" },
      { field: { name: "b", path: [] } },
      { field: { name: "c", path: [{ arrow: "->>", key: "k", isIndex: false }] }, direction: "asc" },
    ]);
    expect(failure(() => parseOrder("id.ac"))).toMatchObject({ column: 4 });
  });
});

describe("query parameters", () => {
  it("separates reserved names, filters, rpc arguments and the gateway's apikey", () => {
    const params = parseQueryParams(
      [
        ["select", "a"],
        ["apikey", "k"],
        ["limit", "5"],
        ["offset", "x"],
        ["name", "supabot"],
        ["age", "gt.3"],
        ["or", "(a.eq.1,b.eq.2)"],
      ],
      true,
    );
    expect(params.args).toEqual([["name", "supabot"]]);
    expect(params.filters).toHaveLength(1);
    expect(params.logic).toHaveLength(1);
    expect([params.limit, params.offset]).toEqual([5, undefined]);
    expect(() => parseQueryParams([["name", "supabot"]], false)).toThrow(ApiError);
  });
});

describe("headers", () => {
  it("parses Prefer with first-wins and strict handling", () => {
    expect(parsePrefer(["count=exact, return=representation", "return=minimal,missing=default"])).toEqual({
      count: "exact",
      return: "representation",
      missing: "default",
    });
    expect(parsePrefer("handling=strict, max-affected=5")).toEqual({ handling: "strict", maxAffected: 5 });
    expect(() => parsePrefer("handling=strict, return=everything")).toThrow(ApiError);
  });

  it("negotiates Accept by quality and parses Range", () => {
    expect(negotiateMedia(undefined)).toBe("json");
    expect(negotiateMedia("text/csv;q=0.9, application/vnd.pgrst.object+json")).toBe("object");
    expect(() => negotiateMedia("text/csv")).toThrow(ApiError);
    expect(parseRange("0-9")).toEqual({ lower: 0, upper: 9 });
    expect(parseRange("5-")).toEqual({ lower: 5 });
    expect(parseRange("items=0-9")).toBeUndefined();
  });
});
