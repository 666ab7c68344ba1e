import { describe, expect, it } from "vitest";
import { applyListQuery, compareValues } from "../src/internal/row-query.js";

const rows = [
  { id: "3", name: "Ávila", seen_at: "2026-11-28T10:00:00.000Z", iop: 14, note: null },
  { id: "1", name: "Zapata", seen_at: "2026-11-28T05:00:00-05:00", iop: null, note: "x" },
  { id: "2", name: "avila", seen_at: "2026-11-27T23:59:59.999Z", iop: 21.5, note: null },
];

describe("applyListQuery", () => {
  it("orders text by code point like the C collation", () => {
    expect(applyListQuery(rows, { orderBy: [{ column: "name" }] }).map((r) => r.name)).toEqual([
      "Zapata",
      "avila",
      "Ávila",
    ]);
  });

  it("compares timestamps by instant across offsets", () => {
    expect(compareValues("2026-11-28T05:00:00-05:00", "2026-11-28T10:00:00.000Z")).toBe(0);
    const found = applyListQuery(rows, { where: { seen_at: { gte: "2026-11-28T00:00:00Z" } } });
    expect(found.map((r) => r.id)).toEqual(["1", "3"]);
  });

  it("puts nulls last ascending and first descending, unless told otherwise", () => {
    expect(applyListQuery(rows, { orderBy: [{ column: "iop" }] }).map((r) => r.id)).toEqual(["3", "2", "1"]);
    expect(
      applyListQuery(rows, { orderBy: [{ column: "iop", direction: "desc" }] }).map((r) => r.id),
    ).toEqual(["1", "2", "3"]);
    expect(
      applyListQuery(rows, { orderBy: [{ column: "iop", direction: "desc", nulls: "last" }] }).map(
        (r) => r.id,
      ),
    ).toEqual(["2", "3", "1"]);
  });

  it("never matches NULL with a comparison, only with null or isNull", () => {
    expect(applyListQuery(rows, { where: { iop: { neq: 14 } } }).map((r) => r.id)).toEqual(["2"]);
    expect(applyListQuery(rows, { where: { iop: null } }).map((r) => r.id)).toEqual(["1"]);
    expect(applyListQuery(rows, { where: { note: { isNull: false } } }).map((r) => r.id)).toEqual(["1"]);
  });

  it("combines in, ranges and paging, with id as the final order", () => {
    const page = applyListQuery(rows, { where: { id: { in: ["1", "2", "3"] } }, limit: 2, offset: 1 });
    expect(page.map((r) => r.id)).toEqual(["2", "3"]);
    expect(applyListQuery(rows, { where: { iop: { gt: 10, lt: 20 } } }).map((r) => r.id)).toEqual(["3"]);
  });
});
