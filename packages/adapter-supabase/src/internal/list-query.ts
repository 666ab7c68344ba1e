import type { ListQuery } from "@centrovision/core";
import type { FilterBuilderLike } from "./client.js";

type AnyRow = Record<string, unknown>;
type Scalar = string | number | boolean;

const COMPARISONS = ["eq", "neq", "gt", "gte", "lt", "lte"] as const;

/**
 * One element of a PostgREST `in.(…)` list, always double-quoted with `"` and `\` escaped.
 * supabase-js's own `.in()` quotes only values containing `,()` and escapes nothing, so a name
 * with a quote (`O"Brien`) or starting with one would be read as something else.
 */
function inElement(value: Scalar): string {
  return `"${String(value).replace(/[\\"]/g, (char) => `\\${char}`)}"`;
}

function applyColumn<B extends FilterBuilderLike>(builder: B, column: string, filter: unknown): B {
  if (filter === null) return builder.is(column, null);
  if (typeof filter !== "object") return builder.eq(column, filter as Scalar);
  let out = builder;
  const ops = filter as Record<string, unknown>;
  if (ops.isNull === true) out = out.is(column, null);
  if (ops.isNull === false) out = out.not(column, "is", null);
  for (const op of COMPARISONS) {
    // `filter` passes the operand through as text after `op.`: no quoting, no type games.
    if (ops[op] !== undefined) out = out.filter(column, op, ops[op]);
  }
  if (Array.isArray(ops.in))
    out = out.filter(column, "in", `(${(ops.in as Scalar[]).map(inElement).join(",")})`);
  return out;
}

/**
 * Applies a query already checked by core's `parseListQuery` (columns are the table's, operands
 * values the column can hold): filters, then the requested order with nulls placed exactly as
 * asked — spelled out, since core's defaults (last when ascending, first when descending) must
 * not depend on PostgREST's — then `id`, so pages are stable. Paging is the caller's.
 *
 * Text orders by the database's collation: PostgREST cannot say `COLLATE "C"`. Code-point order,
 * as the other sources give, holds only where the cloud database's collation is C (see README).
 */
export function applyFiltersAndOrder<B extends FilterBuilderLike>(builder: B, query: ListQuery<AnyRow>): B {
  let out = builder;
  for (const [column, filter] of Object.entries(query.where ?? {})) {
    if (filter !== undefined) out = applyColumn(out, column, filter);
  }
  for (const order of query.orderBy ?? []) {
    const descending = order.direction === "desc";
    out = out.order(order.column, {
      ascending: !descending,
      nullsFirst: order.nulls === undefined ? descending : order.nulls === "first",
    });
  }
  return out.order("id", { ascending: true, nullsFirst: false });
}

/** The pages a list needs: `[from, to]` inclusive ranges of at most `pageSize` rows. */
export interface PagePlan {
  /** The next range to ask for, given how many rows arrived so far; `undefined` when done. */
  next(received: number, lastPageLength: number | undefined): [number, number] | undefined;
}

/**
 * Supabase caps every read at `db-max-rows` (1000 by default) without saying so, so a list of
 * more rows is read in pages. A page shorter than asked is the end. Each page is its own request
 * and snapshot: rows written meanwhile may shift a later page (see README).
 */
export function planPages(query: ListQuery<AnyRow>, pageSize: number): PagePlan {
  const offset = query.offset ?? 0;
  const limit = query.limit;
  return {
    next(received, lastPageLength) {
      if (limit !== undefined && received >= limit) return undefined;
      if (lastPageLength !== undefined && lastPageLength < pageSize) return undefined;
      const size = limit === undefined ? pageSize : Math.min(pageSize, limit - received);
      return [offset + received, offset + received + size - 1];
    },
  };
}
