/**
 * What every operation builds: one parameterised statement returning one row
 * (`page_total`, `body`, …), and a function that turns that row into
 * the HTTP reply. Bodies are rendered by PostgreSQL (`json_agg`), as
 * PostgREST does, so numbers, dates, ranges and jsonb keep its formatting.
 */
import type { Catalog } from "./catalog.js";
import { ApiError } from "./errors.js";
import type { QueryParams } from "./query-params.js";
import type { MediaKind, Preferences } from "./request-headers.js";

export interface ResultRow {
  /** Rows in the page, or rows the mutation touched. */
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
  readonly method: "GET" | "POST" | "PATCH" | "DELETE";
  readonly query: QueryParams;
  readonly prefs: Preferences;
  readonly media: MediaKind;
  /** Set when the client named the schema with a profile header; the reply echoes it. */
  readonly profile: string | undefined;
  readonly body: string | undefined;
  /** A POST's body sent as `application/octet-stream`, which `body` then is not. */
  readonly bytes: Buffer | undefined;
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

/** The page a read asks for, after `limit`/`offset` and max rows. */
export interface Page {
  readonly offset: number;
  /** Undefined: no limit. */
  readonly limit?: number;
}

/** `limit`/`offset` capped at max rows (PostgREST's `RangeQuery`). */
export function pageFor(ctx: PlanContext): Page {
  const { limit, offset } = ctx.query;
  if (limit !== undefined && limit < 0) {
    throw new ApiError(
      416,
      "PGRST103",
      "Requested range not satisfiable",
      "Limit should be greater than or equal to zero.",
    );
  }
  const lower = Math.max(offset ?? 0, 0);
  const caps = [limit, ctx.maxRows ?? undefined].filter((n) => n !== undefined);
  return caps.length === 0 ? { offset: lower } : { offset: lower, limit: Math.min(...caps) };
}

/** PostgREST's `Content-Range` without a count: the rows' span (`*` when empty) over an unknown total, e.g. `0-9/*`. */
export function contentRange(lower: number, upper: number): string {
  return `${lower <= upper ? `${lower}-${upper}` : "*"}/*`;
}
