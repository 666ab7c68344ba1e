import type { Table } from "./catalog.js";
import { singularityError } from "./errors.js";
import {
  contentHeaders,
  countHeader,
  type Page,
  type Plan,
  type PlanContext,
  pageFor,
  readStatus,
  toCount,
} from "./plan.js";
import {
  ident,
  limitOffsetSql,
  orderSql,
  Params,
  type Relation,
  selectSql,
  whereSql,
} from "./sql-fragments.js";

export const TABLE_ALIAS = '"pgrst_t"';

export function tableRelation(table: Table): Relation {
  return { name: table.name, alias: TABLE_ALIAS, columns: table.columns };
}

export function tableFrom(table: Table): string {
  return `${ident(table.schema)}.${ident(table.name)} AS ${TABLE_ALIAS}`;
}

/** The aggregate that renders the page `_t` as the response body. */
export function bodyAggregate(ctx: PlanContext, column = "_t"): string {
  if (ctx.method === "HEAD") return "null";
  return ctx.media === "object"
    ? `coalesce((json_agg(${column})->0)::text, 'null')`
    : `coalesce(json_agg(${column}), '[]')::text`;
}

/**
 * Answers a page read (table GET/HEAD, or a set-returning function) once the
 * statement ran: Content-Range, 200/206/416, singular enforcement.
 */
export function finishRead(ctx: PlanContext, page: Page) {
  return (row: { total: string | number | null; page_total: string | number; body: string | null }) => {
    const pageTotal = Number(row.page_total);
    const { status, range } = readStatus(page.offset, pageTotal, toCount(row.total));
    if (ctx.media === "object" && pageTotal !== 1) throw singularityError(pageTotal);
    const headers = { "Content-Range": range, ...contentHeaders(ctx), ...countHeader(ctx) };
    return ctx.method === "HEAD" || row.body === null
      ? { status, headers }
      : { status, headers, body: row.body };
  };
}

/**
 * GET/HEAD on a table: one statement computes the page, its size, the body
 * and — with `Prefer: count` — the total over the same filters without
 * limit/offset.
 */
export function planTableRead(ctx: PlanContext, table: Table): Plan {
  const relation = tableRelation(table);
  const params = new Params();
  const select = selectSql(relation, ctx.query.select, ctx.catalog.castTypes, params);
  const where = whereSql(relation, ctx.query.filters, ctx.query.logic, params);
  const order = orderSql(relation, ctx.query.order, params);
  const page = pageFor(ctx);
  const limit = limitOffsetSql(page.limit, page.offset, params);
  const from = tableFrom(table);
  const paged = page.limit !== undefined || page.offset > 0;
  let total = "null";
  if (ctx.prefs.count)
    total = paged ? `(SELECT pg_catalog.count(*) FROM ${from} ${where})` : "pg_catalog.count(_t)";
  const sql =
    `SELECT ${total} AS total, pg_catalog.count(_t) AS page_total, ${bodyAggregate(ctx)} AS body ` +
    `FROM (SELECT ${select} FROM ${from} ${where} ${order} ${limit}) _t`;
  return { sql, params: params.values, readOnly: true, finish: finishRead(ctx, page) };
}
