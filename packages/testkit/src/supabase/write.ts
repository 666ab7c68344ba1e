/**
 * POST (insert/upsert), PATCH and DELETE on a table. Each runs as
 * `WITH pgrst_source AS (<mutation> RETURNING …) SELECT …` so the affected
 * rows, the representation and the counts come from one statement.
 */
import type { Table } from "./catalog.js";
import { ApiError, singularityError } from "./errors.js";
import { bodySource, type Payload, parsePayload, payloadColumns } from "./payload.js";
import {
  contentHeaders,
  contentRange,
  type Plan,
  type PlanContext,
  type Reply,
  type ResultRow,
  toCount,
} from "./plan.js";
import { bodyAggregate, TABLE_ALIAS, tableFrom, tableRelation } from "./read.js";
import { preferenceApplied } from "./request-headers.js";
import { ident, Params, selectSql, whereSql } from "./sql-fragments.js";

type Mutation = "insert" | "update" | "delete";

interface Shape {
  readonly representation: boolean;
  readonly headersOnly: boolean;
}

function shapeOf(ctx: PlanContext, mutation: Mutation): Shape {
  return {
    representation: ctx.prefs.return === "representation",
    headersOnly: ctx.prefs.return === "headers-only" && mutation === "insert",
  };
}

/** What the mutation returns: the whole row when it is shown, else a constant so no SELECT right is needed. */
function returnedItems(shape: Shape, merge: boolean): string {
  const parts = [
    shape.representation || shape.headersOnly ? `${TABLE_ALIAS} AS pgrst_row` : "1 AS pgrst_one",
  ];
  // xmax is 0 only on rows this statement inserted; upserts already need SELECT, so reading it costs no right.
  if (merge) parts.push(`(${TABLE_ALIAS}.xmax = 0) AS pgrst_inserted`);
  return parts.join(", ");
}

function outerSelect(ctx: PlanContext, table: Table, shape: Shape, params: Params, merge: boolean): string {
  const pageTotal = "(SELECT pg_catalog.count(*) FROM pgrst_source)";
  let body = "null";
  if (shape.representation) {
    const select = selectSql(tableRelation(table), ctx.query.select, ctx.catalog.castTypes, params);
    body =
      `(SELECT ${bodyAggregate(ctx)} FROM (SELECT ${select} FROM ` +
      `(SELECT (pgrst_source.pgrst_row).* FROM pgrst_source) AS ${TABLE_ALIAS}) _t)`;
  } else if (shape.headersOnly && table.primaryKey.length > 0) {
    const keys = table.primaryKey.map((name) => `(pgrst_row).${ident(name)}::text`).join(", ");
    body = `(SELECT json_build_array(${keys})::text FROM pgrst_source LIMIT 1)`;
  }
  const inserted = merge ? "(SELECT pg_catalog.count(*) FROM pgrst_source WHERE pgrst_inserted)" : "null";
  return `SELECT ${pageTotal} AS total, ${pageTotal} AS page_total, ${body} AS body, ${inserted} AS inserted`;
}

function location(table: Table, body: string | null): Record<string, string> {
  if (body === null) return {};
  const values = JSON.parse(body) as (string | null)[];
  const query = table.primaryKey.map(
    (name, i) => `${encodeURIComponent(name)}=eq.${encodeURIComponent(values[i] ?? "")}`,
  );
  return { Location: `/${encodeURIComponent(table.name)}?${query.join("&")}` };
}

function finishMutation(
  ctx: PlanContext,
  table: Table,
  mutation: Mutation,
  shape: Shape,
  applied: Record<string, string>,
) {
  return (row: ResultRow): Reply => {
    const affected = Number(row.page_total);
    if (ctx.media === "object" && affected !== 1) throw singularityError(affected);
    const { maxAffected, handling } = ctx.prefs;
    if (
      mutation !== "insert" &&
      handling === "strict" &&
      maxAffected !== undefined &&
      affected > maxAffected
    ) {
      throw new ApiError(
        400,
        "PGRST124",
        "Query result exceeds max-affected preference constraint",
        `The query affects ${affected} rows`,
      );
    }
    const total = ctx.prefs.count ? toCount(row.total) : undefined;
    const range = mutation === "update" ? contentRange(0, affected - 1, total) : contentRange(1, 0, total);
    const prefs = preferenceApplied({
      ...applied,
      ...(ctx.prefs.return && { return: ctx.prefs.return }),
      ...(ctx.prefs.count && { count: ctx.prefs.count }),
      ...(handling && { handling }),
      ...(maxAffected !== undefined && mutation !== "insert" && { "max-affected": String(maxAffected) }),
    });
    const headers: Record<string, string> = {
      "Content-Range": range,
      ...(prefs && { "Preference-Applied": prefs }),
    };
    let status = mutation === "insert" ? 201 : shape.representation ? 200 : 204;
    if (
      mutation === "insert" &&
      row.inserted !== null &&
      row.inserted !== undefined &&
      Number(row.inserted) === 0
    ) {
      status = 200;
    }
    if (shape.headersOnly) return { status, headers: { ...headers, ...location(table, row.body) } };
    if (!shape.representation || row.body === null) return { status, headers };
    return { status, headers: { ...headers, ...contentHeaders(ctx) }, body: row.body };
  };
}

interface MutationSpec {
  readonly mutation: Mutation;
  /** The data-modifying statement, given what it must return (`RETURNING <items>`). */
  readonly statement: (items: string) => string;
  readonly params: Params;
  readonly merge?: boolean;
  /** Preferences this mutation honoured besides return/count/handling. */
  readonly applied?: Record<string, string>;
}

function plan(ctx: PlanContext, table: Table, spec: MutationSpec): Plan {
  const shape = shapeOf(ctx, spec.mutation);
  const merge = spec.merge ?? false;
  const statement = spec.statement(returnedItems(shape, merge));
  const sql = `WITH pgrst_source AS (${statement}) ${outerSelect(ctx, table, shape, spec.params, merge)}`;
  const finish = finishMutation(ctx, table, spec.mutation, shape, spec.applied ?? {});
  return { sql, params: spec.params.values, readOnly: false, finish };
}

function requireFilters(ctx: PlanContext, verb: "UPDATE" | "DELETE"): void {
  // Supabase preloads pg-safeupdate for its API role, so an unfiltered UPDATE/DELETE fails there; fail here too.
  if (ctx.query.filters.length === 0 && ctx.query.logic.length === 0) {
    throw new ApiError(400, "21000", `${verb} requires a WHERE clause`);
  }
}

/** POST: insert one row or many; with `Prefer: resolution=…`, an upsert on `on_conflict` or the primary key. */
export function planInsert(ctx: PlanContext, table: Table): Plan {
  const payload: Payload = parsePayload(ctx.body, ctx.query.columns !== undefined);
  const columns = payloadColumns(table, payload, ctx.query.columns);
  const params = new Params();
  const names = columns.map((c) => ident(c.name));
  const source = bodySource(payload, columns, {
    params,
    missingDefault: ctx.prefs.missing === "default",
    limitOne: false,
  });
  const { resolution } = ctx.prefs;
  const conflict = resolution ? (ctx.query.onConflict ?? table.primaryKey) : [];
  for (const name of conflict) {
    if (!table.columns.has(name)) throw new ApiError(400, "42703", `column "${name}" does not exist`);
  }
  let onConflict = "";
  if (conflict.length > 0) {
    const action =
      resolution === "ignore-duplicates" || names.length === 0
        ? "DO NOTHING"
        : `DO UPDATE SET ${names.map((n) => `${n} = EXCLUDED.${n}`).join(", ")}`;
    onConflict = `ON CONFLICT (${conflict.map(ident).join(", ")}) ${action}`;
  }
  const target = names.length > 0 ? `(${names.join(", ")}) ` : "";
  const values = names.map((n) => `pgrst_body.${n}`).join(", ");
  return plan(ctx, table, {
    mutation: "insert",
    statement: (items) =>
      `INSERT INTO ${tableFrom(table)} ${target}SELECT ${values} FROM ${source} ${onConflict} RETURNING ${items}`,
    params,
    merge: resolution === "merge-duplicates" && conflict.length > 0,
    applied: {
      ...(resolution && conflict.length > 0 && { resolution }),
      ...(ctx.prefs.missing && { missing: ctx.prefs.missing }),
    },
  });
}

/** PATCH: sets the payload's columns on every row the filters match. */
export function planUpdate(ctx: PlanContext, table: Table): Plan {
  requireFilters(ctx, "UPDATE");
  const payload = parsePayload(ctx.body, ctx.query.columns !== undefined);
  const columns = payloadColumns(table, payload, ctx.query.columns);
  const params = new Params();
  const where = whereSql(tableRelation(table), ctx.query.filters, ctx.query.logic, params);
  if (columns.length === 0) {
    // Nothing to set: PostgREST answers as if no row matched.
    const statement = (items: string) => `SELECT ${items} FROM ${tableFrom(table)} WHERE false`;
    return plan(ctx, table, { mutation: "update", statement, params });
  }
  const source = bodySource(payload, columns, {
    params,
    missingDefault: ctx.prefs.missing === "default",
    limitOne: true,
  });
  const set = columns.map((c) => `${ident(c.name)} = pgrst_body.${ident(c.name)}`).join(", ");
  return plan(ctx, table, {
    mutation: "update",
    statement: (items) => `UPDATE ${tableFrom(table)} SET ${set} FROM ${source} ${where} RETURNING ${items}`,
    params,
    applied: ctx.prefs.missing ? { missing: ctx.prefs.missing } : {},
  });
}

/** DELETE: removes every row the filters match. */
export function planDelete(ctx: PlanContext, table: Table): Plan {
  requireFilters(ctx, "DELETE");
  const params = new Params();
  const where = whereSql(tableRelation(table), ctx.query.filters, ctx.query.logic, params);
  return plan(ctx, table, {
    mutation: "delete",
    statement: (items) => `DELETE FROM ${tableFrom(table)} ${where} RETURNING ${items}`,
    params,
  });
}
