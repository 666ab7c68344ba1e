import type { Table } from "./catalog.js";
import { singularityError } from "./errors.js";
import {
  contentHeaders,
  contentRange,
  type Page,
  type Plan,
  type PlanContext,
  pageFor,
  type ResultRow,
} from "./plan.js";
import { limitOffsetSql, orderSql, Params, selectSql, tableFrom, whereSql } from "./sql-fragments.js";

/** The aggregate that renders the rows `column` as the response body: an array, or the one object. */
export function bodyAggregate(media: PlanContext["media"], column = "_t"): string {
  return media === "object"
    ? `coalesce((json_agg(${column})->0)::text, 'null')`
    : `coalesce(json_agg(${column}), '[]')::text`;
}

/** Answers a read (a table page, or a function's result): Content-Range, singular enforcement. */
export function finishRead(ctx: PlanContext, page: Page) {
  return (row: ResultRow) => {
    const pageTotal = Number(row.page_total);
    if (ctx.media === "object" && pageTotal !== 1) throw singularityError(pageTotal);
    const headers = {
      "Content-Range": contentRange(page.offset, page.offset + pageTotal - 1),
      ...contentHeaders(ctx),
    };
    return { status: 200, headers, body: row.body ?? "null" };
  };
}

/** GET on a table: one statement computes the page, its size and the body. */
export function planTableRead(ctx: PlanContext, table: Table): Plan {
  const params = new Params();
  const select = selectSql(table, ctx.query.select);
  const where = whereSql(table, ctx.query.filters, params);
  const order = orderSql(table, ctx.query.order);
  const page = pageFor(ctx);
  const limit = limitOffsetSql(page.limit, page.offset, params);
  const sql =
    `SELECT pg_catalog.count(_t) AS page_total, ${bodyAggregate(ctx.media)} AS body ` +
    `FROM (SELECT ${select} FROM ${tableFrom(table)} ${where} ${order} ${limit}) _t`;
  return { sql, params: params.values, readOnly: true, finish: finishRead(ctx, page) };
}
