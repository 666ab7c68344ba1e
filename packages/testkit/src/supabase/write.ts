/**
 * POST (insert/upsert), PATCH and DELETE on a table. Each runs as
 * `WITH pgrst_source AS (<mutation> RETURNING …) SELECT …` so the affected
 * rows, the representation and the counts come from one statement.
 */
import type { Table } from "./catalog.js";
import { ApiError, notImplemented, singularityError } from "./errors.js";
import { bodySource, parsePayload, payloadColumns } from "./payload.js";
import {
  contentHeaders,
  contentRange,
  type Plan,
  type PlanContext,
  type Reply,
  type ResultRow,
} from "./plan.js";
import { bodyAggregate } from "./read.js";
import { ident, Params, selectSql, TABLE_ALIAS, tableFrom, whereSql } from "./sql-fragments.js";

type Mutation = "insert" | "update" | "delete";

/** What the mutation returns: the whole row when it is shown, else a constant so no SELECT right is needed. */
function returnedItems(representation: boolean, merge: boolean): string {
  const parts = [representation ? `${TABLE_ALIAS} AS pgrst_row` : "1 AS pgrst_one"];
  // xmax is 0 only on rows this statement inserted; upserts already need SELECT, so reading it costs no right.
  if (merge) parts.push(`(${TABLE_ALIAS}.xmax = 0) AS pgrst_inserted`);
  return parts.join(", ");
}

function outerSelect(ctx: PlanContext, table: Table, representation: boolean, merge: boolean): string {
  const body = representation
    ? `(SELECT ${bodyAggregate(ctx.media)} FROM (SELECT ${selectSql(table, ctx.query.select)} FROM ` +
      `(SELECT (pgrst_source.pgrst_row).* FROM pgrst_source) AS ${TABLE_ALIAS}) _t)`
    : "null";
  const inserted = merge ? "(SELECT pg_catalog.count(*) FROM pgrst_source WHERE pgrst_inserted)" : "null";
  return `SELECT (SELECT pg_catalog.count(*) FROM pgrst_source) AS page_total, ${body} AS body, ${inserted} AS inserted`;
}

function finishMutation(ctx: PlanContext, mutation: Mutation, representation: boolean) {
  return (row: ResultRow): Reply => {
    const affected = Number(row.page_total);
    if (ctx.media === "object" && affected !== 1) throw singularityError(affected);
    const applied = [
      ctx.prefs.resolution && mutation === "insert" && `resolution=${ctx.prefs.resolution}`,
      ctx.prefs.return && `return=${ctx.prefs.return}`,
    ].filter(Boolean);
    const headers: Record<string, string> = {
      "Content-Range": mutation === "update" ? contentRange(0, affected - 1) : "*/*",
      ...(applied.length > 0 && { "Preference-Applied": applied.join(", ") }),
    };
    let status = representation ? 200 : 204;
    // An upsert that only updated rows answers 200, as PostgREST does; any other insert 201.
    if (mutation === "insert") status = row.inserted === null || Number(row.inserted) > 0 ? 201 : 200;
    if (!representation || row.body === null) return { status, headers };
    return { status, headers: { ...headers, ...contentHeaders(ctx) }, body: row.body };
  };
}

function plan(
  ctx: PlanContext,
  table: Table,
  mutation: Mutation,
  statement: (returning: string) => string,
  params: Params,
  merge = false,
): Plan {
  const representation = ctx.prefs.return === "representation";
  const sql = `WITH pgrst_source AS (${statement(returnedItems(representation, merge))}) ${outerSelect(ctx, table, representation, merge)}`;
  return {
    sql,
    params: params.values,
    readOnly: false,
    finish: finishMutation(ctx, mutation, representation),
  };
}

function requireFilters(ctx: PlanContext, verb: "UPDATE" | "DELETE"): void {
  // Supabase preloads pg-safeupdate for its API role, so an unfiltered UPDATE/DELETE fails there; fail here too.
  if (ctx.query.filters.length === 0) throw new ApiError(400, "21000", `${verb} requires a WHERE clause`);
}

/** POST: insert one row or many; with `Prefer: resolution=merge-duplicates`, an upsert on `on_conflict`. */
export function planInsert(ctx: PlanContext, table: Table): Plan {
  const payload = parsePayload(ctx.body, ctx.query.columns !== undefined);
  const columns = payloadColumns(table, payload, ctx.query.columns);
  const params = new Params();
  const names = columns.map((c) => ident(c.name));
  const source = bodySource(payload, columns, { params, limitOne: false });
  let onConflict = "";
  if (ctx.prefs.resolution) {
    const conflict = ctx.query.onConflict;
    if (conflict === undefined) {
      throw notImplemented(
        "An upsert on the primary key without on_conflict is not supported by the local gateway; name the conflict columns with on_conflict",
      );
    }
    for (const name of conflict) {
      if (!table.columns.has(name)) throw new ApiError(400, "42703", `column "${name}" does not exist`);
    }
    const action =
      names.length === 0
        ? "DO NOTHING"
        : `DO UPDATE SET ${names.map((n) => `${n} = EXCLUDED.${n}`).join(", ")}`;
    onConflict = `ON CONFLICT (${conflict.map(ident).join(", ")}) ${action}`;
  }
  const target = names.length > 0 ? `(${names.join(", ")}) ` : "";
  const values = names.map((n) => `pgrst_body.${n}`).join(", ");
  const statement = (returning: string) =>
    `INSERT INTO ${tableFrom(table)} ${target}SELECT ${values} FROM ${source} ${onConflict} RETURNING ${returning}`;
  return plan(ctx, table, "insert", statement, params, onConflict !== "");
}

/** PATCH: sets the payload's columns on every row the filters match. */
export function planUpdate(ctx: PlanContext, table: Table): Plan {
  requireFilters(ctx, "UPDATE");
  const payload = parsePayload(ctx.body, ctx.query.columns !== undefined);
  const columns = payloadColumns(table, payload, ctx.query.columns);
  const params = new Params();
  const where = whereSql(table, ctx.query.filters, params);
  if (columns.length === 0) {
    // Nothing to set: PostgREST answers as if no row matched.
    const statement = (returning: string) => `SELECT ${returning} FROM ${tableFrom(table)} WHERE false`;
    return plan(ctx, table, "update", statement, params);
  }
  const source = bodySource(payload, columns, { params, limitOne: true });
  const set = columns.map((c) => `${ident(c.name)} = pgrst_body.${ident(c.name)}`).join(", ");
  const statement = (returning: string) =>
    `UPDATE ${tableFrom(table)} SET ${set} FROM ${source} ${where} RETURNING ${returning}`;
  return plan(ctx, table, "update", statement, params);
}

/** DELETE: removes every row the filters match. */
export function planDelete(ctx: PlanContext, table: Table): Plan {
  requireFilters(ctx, "DELETE");
  const params = new Params();
  const where = whereSql(table, ctx.query.filters, params);
  const statement = (returning: string) => `DELETE FROM ${tableFrom(table)} ${where} RETURNING ${returning}`;
  return plan(ctx, table, "delete", statement, params);
}
