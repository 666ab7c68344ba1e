/**
 * One REST request, from URL and headers to the reply: routing, auth,
 * negotiation, planning against the schema cache, and the transaction.
 */
import type { Sql } from "postgres";
import type { CatalogCache } from "./catalog.js";
import { ApiError, fromDatabaseError, notImplemented } from "./errors.js";
import { authenticate, type ProjectKeys } from "./jwt.js";
import type { Plan, PlanContext, Reply, ResultRow } from "./plan.js";
import { parseQueryParams } from "./query-params.js";
import { planTableRead } from "./read.js";
import { negotiateMedia, negotiateSchema, parsePrefer } from "./request-headers.js";
import { planCall, requestedArgs, resolveFunction, resolveRawBytesFunction } from "./rpc.js";
import { planDelete, planInsert, planUpdate } from "./write.js";

export interface RestRequest {
  readonly method: string;
  /** The path after `/rest/v1`, e.g. `/todos` or `/rpc/fn`, percent-decoded per segment. */
  readonly segments: readonly string[];
  readonly query: readonly [string, string][];
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: string | undefined;
  /** The body of an `application/octet-stream` request, as sent (`body` is then undefined). */
  readonly bytes?: Buffer;
}

export interface HandlerOptions {
  readonly pool: Sql;
  readonly catalog: CatalogCache;
  readonly keys: ProjectKeys;
  readonly maxRows: number | null;
}

type Target = { kind: "table"; name: string } | { kind: "rpc"; name: string };

const TABLE_METHODS = new Set(["GET", "POST", "PATCH", "DELETE"]);
const RPC_METHODS = new Set(["GET", "POST"]);
/** Schema-cache misses: retried once after a reload, in case DDL just ran. */
const CACHE_MISSES = new Set(["PGRST205", "PGRST204", "PGRST202", "42703"]);

// PostgREST: one statement sets the transaction-local role and request settings.
const SETUP_SQL =
  "select set_config('search_path', $1, true), set_config('role', $2, true), " +
  "set_config('request.jwt.claims', $3, true), set_config('request.method', $4, true), " +
  "set_config('request.path', $5, true), set_config('request.headers', $6, true), " +
  "set_config('request.cookies', $7, true)";

/** SETUP_SQL plus the role's own settings (e.g. statement_timeout), as PostgREST applies them. */
function setupFor(role: string, catalog: PlanContext["catalog"]): { sql: string; params: string[] } {
  const settings = catalog.roleSettings.get(role) ?? [];
  const calls = settings.map((_, i) => `, set_config($${8 + 2 * i}, $${9 + 2 * i}, true)`);
  return { sql: SETUP_SQL + calls.join(""), params: settings.flat() };
}

function header(headers: RestRequest["headers"], name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value.join(", ") : value;
}

function target(request: RestRequest): Target {
  const [first, second, ...rest] = request.segments;
  if (first === "rpc" && second !== undefined && second !== "" && rest.length === 0)
    return { kind: "rpc", name: second };
  if (first !== undefined && first !== "" && second === undefined) return { kind: "table", name: first };
  if (first === undefined || first === "") {
    throw new ApiError(404, "PGRST126", "Root endpoint metadata is disabled");
  }
  throw new ApiError(404, "PGRST125", "Invalid path specified in request URL");
}

/**
 * PostgREST's method checks. What PostgREST serves and this gateway does not (HEAD, PUT, the
 * Range header) is refused with PGRST127, never half-answered.
 */
function checkRequest(request: RestRequest, to: Target): void {
  const { method } = request;
  if (method === "HEAD") throw notImplemented("HEAD is not supported by the local gateway; use GET");
  if (to.kind === "rpc" && !RPC_METHODS.has(method)) {
    throw new ApiError(405, "PGRST101", `Cannot use the ${method} method on RPC`);
  }
  if (to.kind === "table" && method === "PUT") {
    throw notImplemented(
      "PUT is not supported by the local gateway; use an upsert (POST with Prefer: resolution=merge-duplicates)",
    );
  }
  if (to.kind === "table" && !TABLE_METHODS.has(method)) {
    throw new ApiError(405, "PGRST117", `Unsupported HTTP method: ${method}`);
  }
  if (method === "GET" && request.headers.range !== undefined) {
    throw notImplemented(
      "The Range header is not supported by the local gateway; page with limit and offset",
    );
  }
}

function planFor(ctx: PlanContext, schema: string, to: Target): Plan {
  const { catalog } = ctx;
  if (to.kind === "rpc") {
    const fn =
      ctx.bytes === undefined
        ? resolveFunction(catalog, schema, to.name, requestedArgs(ctx), ctx.method === "POST")
        : resolveRawBytesFunction(catalog, schema, to.name);
    return planCall(ctx, fn);
  }
  const table = catalog.tables.get(to.name);
  if (!table) {
    throw new ApiError(
      404,
      "PGRST205",
      `Could not find the table '${schema}.${to.name}' in the schema cache`,
    );
  }
  if (ctx.method === "POST") return planInsert(ctx, table);
  if (ctx.method === "PATCH") return planUpdate(ctx, table);
  if (ctx.method === "DELETE") return planDelete(ctx, table);
  return planTableRead(ctx, table);
}

/**
 * Answers one request under `/rest/v1`. Failures PostgREST would report come
 * back as {@link ApiError}; anything else is thrown for the caller to log.
 */
export async function handleRest(options: HandlerOptions, request: RestRequest): Promise<Reply> {
  const auth = await authenticate(
    options.keys,
    header(request.headers, "apikey") ?? request.query.find(([k]) => k === "apikey")?.[1],
    header(request.headers, "authorization"),
  );
  const to = target(request);
  checkRequest(request, to);
  const { schema, negotiated } = negotiateSchema(
    request.headers[request.method === "GET" ? "accept-profile" : "content-profile"],
  );
  const ctx: PlanContext = {
    method: request.method as PlanContext["method"],
    query: parseQueryParams(request.query, to.kind === "rpc"),
    prefs: parsePrefer(request.headers.prefer),
    media: negotiateMedia(request.headers.accept),
    profile: negotiated ? schema : undefined,
    body: request.body,
    bytes: request.bytes,
    catalog: options.catalog.current,
    maxRows: options.maxRows,
  };
  let plan: Plan;
  try {
    plan = planFor(ctx, schema, to);
  } catch (error) {
    if (!(error instanceof ApiError && CACHE_MISSES.has(error.body.code))) throw error;
    await options.catalog.reload();
    plan = planFor({ ...ctx, catalog: options.catalog.current }, schema, to);
  }
  const { cookie, ...headers } = request.headers;
  const setup = setupFor(auth.role, options.catalog.current);
  const settings = [
    `${schema}, extensions`,
    auth.role,
    JSON.stringify(auth.claims),
    request.method,
    `/${request.segments.join("/")}`,
    JSON.stringify(headers),
    JSON.stringify(parseCookies(cookie)),
    ...setup.params,
  ];
  try {
    return await options.pool.begin(plan.readOnly ? "read only" : "read write", async (tx) => {
      const [, rows] = await Promise.all([
        tx.unsafe(setup.sql, settings, { prepare: true }),
        tx.unsafe(plan.sql, plan.params as string[], { prepare: true }),
      ]);
      const [row] = rows;
      if (!row) throw new Error("statement returned no row");
      return plan.finish(row as unknown as ResultRow);
    });
  } catch (error) {
    if (error instanceof ApiError) throw error;
    throw fromDatabaseError(error, auth.role === "anon") ?? error;
  }
}

function parseCookies(cookie: string | string[] | undefined): Record<string, string> {
  const text = Array.isArray(cookie) ? cookie.join("; ") : (cookie ?? "");
  const cookies: Record<string, string> = {};
  for (const pair of text.split(";")) {
    const at = pair.indexOf("=");
    if (at > 0) cookies[pair.slice(0, at).trim()] = pair.slice(at + 1).trim();
  }
  return cookies;
}
