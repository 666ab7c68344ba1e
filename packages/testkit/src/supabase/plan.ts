/**
 * What every operation builds: one parameterised statement returning one row
 * (`total`, `page_total`, `body`, …), and a function that turns that row into
 * the HTTP reply. Bodies are rendered by PostgreSQL (`json_agg`), as
 * PostgREST does, so numbers, dates, ranges and jsonb keep its formatting.
 */
import type { Catalog } from "./catalog.js";
import { ApiError } from "./errors.js";
import type { QueryParams } from "./query-params.js";
import { type MediaKind, type Preferences, preferenceApplied } from "./request-headers.js";

export interface ResultRow {
  /** The `Prefer: count` total, or null when not counted. */
  readonly total: string | number | null;
  readonly page_total: string | number;
  readonly body: string | null;
  /** Rows an upsert inserted (the rest were updates); null when not asked. */
  readonly inserted?: string | number | null;
}

export interface Reply {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  /** Absent: no body and no Content-Type. */
  readonly body?: string;
}

export interface Plan {
  readonly sql: string;
  readonly params: readonly (string | null)[];
  readonly readOnly: boolean;
  /** Builds the reply from the statement's row. Throwing rolls the transaction back. */
  finish(row: ResultRow): Reply;
}

/** Everything about the request a planner needs besides the target. */
export interface PlanContext {
  readonly method: "GET" | "HEAD" | "POST" | "PATCH" | "DELETE";
  readonly query: QueryParams;
  readonly prefs: Preferences;
  readonly media: MediaKind;
  /** Set when the client named the schema with a profile header; the reply echoes it. */
  readonly profile: string | undefined;
  readonly range: { lower: number; upper?: number } | undefined;
  readonly body: string | undefined;
  readonly catalog: Catalog;
  /** Supabase's `db-max-rows` (1000 by default); null for no cap. */
  readonly maxRows: number | null;
}

export function contentHeaders(ctx: PlanContext): Record<string, string> {
  const type = ctx.media === "object" ? "application/vnd.pgrst.object+json" : "application/json";
  return {
    "Content-Type": `${type}; charset=utf-8`,
    ...(ctx.profile !== undefined && { "Content-Profile": ctx.profile }),
  };
}

export function countHeader(ctx: PlanContext): Record<string, string> {
  const applied = preferenceApplied({ ...(ctx.prefs.count && { count: ctx.prefs.count }) });
  return applied ? { "Preference-Applied": applied } : {};
}

/** The page a read asks for, after `limit`/`offset`, the `Range` header and max rows. */
export interface Page {
  readonly offset: number;
  /** Undefined: no limit. */
  readonly limit?: number;
}

function rangeError(details: string): ApiError {
  return new ApiError(416, "PGRST103", "Requested range not satisfiable", details);
}

/** Intersects `limit`/`offset` with the `Range` header and caps at max rows (PostgREST's `RangeQuery`). */
export function pageFor(ctx: PlanContext): Page {
  const { limit, offset } = ctx.query;
  if (limit !== undefined && limit < 0) throw rangeError("Limit should be greater than or equal to zero.");
  const header = ctx.method === "GET" || ctx.method === "HEAD" ? ctx.range : undefined;
  if (header?.upper !== undefined && header.upper < header.lower) {
    throw rangeError(
      "The lower boundary must be lower than or equal to the upper boundary in the Range header.",
    );
  }
  const paramLower = Math.max(offset ?? 0, 0);
  const lower = Math.max(paramLower, header?.lower ?? 0);
  let upper = Math.min(
    limit === undefined ? Number.POSITIVE_INFINITY : paramLower + limit - 1,
    header?.upper ?? Number.POSITIVE_INFINITY,
  );
  if (ctx.maxRows !== null) upper = Math.min(upper, lower + ctx.maxRows - 1);
  if (upper === Number.POSITIVE_INFINITY) return { offset: lower };
  return { offset: lower, limit: Math.max(upper - lower + 1, 0) };
}

/** PostgREST's `Content-Range` text: `lower-upper/total`, `*` for an empty range or unknown total. */
export function contentRange(lower: number, upper: number, total: number | undefined): string {
  const range = total !== 0 && lower <= upper ? `${lower}-${upper}` : "*";
  return `${range}/${total ?? "*"}`;
}

/** Status and `Content-Range` of a read: 416 past the end, 206 for a partial page (only with a count). */
export function readStatus(
  offset: number,
  pageTotal: number,
  total: number | undefined,
): { status: number; range: string } {
  const upper = offset + pageTotal - 1;
  const range = contentRange(offset, upper, total);
  if (total === undefined) return { status: 200, range };
  if (offset > total) {
    throw new ApiError(
      416,
      "PGRST103",
      "Requested range not satisfiable",
      `An offset of ${offset} was requested, but there are only ${total} rows.`,
      null,
      { "Content-Range": range },
    );
  }
  return { status: pageTotal < total ? 206 : 200, range };
}

export function toCount(value: string | number | null | undefined): number | undefined {
  return value === null || value === undefined ? undefined : Number(value);
}
