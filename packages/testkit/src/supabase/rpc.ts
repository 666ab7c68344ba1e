/**
 * `rpc/<fn>` over POST (named arguments from the JSON body, or the whole body as
 * the single unnamed bytea argument when it is `application/octet-stream`) and
 * GET (no arguments, read only). Arguments bind by name; the overload is chosen
 * by the set of names, as PostgREST does. Results are a scalar (any type, json
 * and arrays included) or nothing (void → 204).
 */
import type { Catalog, DbFunction } from "./catalog.js";
import { ApiError, invalidBody, notImplemented } from "./errors.js";
import { bodySource } from "./payload.js";
import { type Plan, type PlanContext, pageFor } from "./plan.js";
import { bodyAggregate, finishRead } from "./read.js";
import { ident, limitOffsetSql, Params } from "./sql-fragments.js";

const JSON_TYPES = new Set(["json", "jsonb"]);

/** The type of a function's single unnamed parameter, to which PostgREST hands the whole POST body. */
function singleUnnamedType(fn: DbFunction): string | undefined {
  const [only, ...rest] = fn.params;
  return only !== undefined && rest.length === 0 && only.name === "" ? only.typeName : undefined;
}

/** A function taking one unnamed json/jsonb argument: a JSON body, whole. */
function takesWholeBody(fn: DbFunction): boolean {
  return JSON_TYPES.has(singleUnnamedType(fn) ?? "");
}

/** A function taking one unnamed bytea argument: an `application/octet-stream` body, as sent. */
function takesRawBytes(fn: DbFunction): boolean {
  return singleUnnamedType(fn) === "bytea";
}

/** The overload of `name` that takes an `application/octet-stream` body: its single unnamed bytea parameter. */
export function resolveRawBytesFunction(catalog: Catalog, schema: string, name: string): DbFunction {
  const chosen = (catalog.functions.get(name) ?? []).find(takesRawBytes);
  if (!chosen) {
    throw new ApiError(
      404,
      "PGRST202",
      `Could not find the function ${schema}.${name} in the schema cache`,
      `Searched for the function ${schema}.${name} with a single unnamed bytea parameter, but no matches were found in the schema cache.`,
    );
  }
  return chosen;
}

function notFound(schema: string, name: string, args: string[], post: boolean): ApiError {
  const sorted = [...args].sort();
  const list = sorted.join(", ");
  const signature = sorted.length === 0 ? " without parameters" : `(${list})`;
  const searched =
    sorted.length === 0 ? " without parameters" : ` with parameter${sorted.length > 1 ? "s" : ""} ${list}`;
  const orJson = post ? " or with a single unnamed json/jsonb parameter" : "";
  return new ApiError(
    404,
    "PGRST202",
    `Could not find the function ${schema}.${name}${signature} in the schema cache`,
    `Searched for the function ${schema}.${name}${searched}${orJson}, but no matches were found in the schema cache.`,
  );
}

/** Picks the overload whose parameter names cover `args` and whose other parameters have defaults. */
export function resolveFunction(
  catalog: Catalog,
  schema: string,
  name: string,
  args: string[],
  post: boolean,
): DbFunction {
  const overloads = catalog.functions.get(name) ?? [];
  const candidates = overloads.filter((fn) => {
    const names = new Set(fn.params.map((p) => p.name));
    return args.every((a) => names.has(a)) && fn.params.every((p) => p.hasDefault || args.includes(p.name));
  });
  const [chosen, ...others] = candidates;
  if (!chosen) {
    if (post && overloads.some(takesWholeBody)) {
      throw notImplemented(
        `${schema}.${name} takes a single unnamed json/jsonb parameter; passing it the whole body is not supported by the local gateway`,
      );
    }
    throw notFound(schema, name, args, post);
  }
  if (others.length > 0) {
    const describe = (fn: DbFunction) =>
      `${fn.schema}.${fn.name}(${fn.params.map((p) => `${p.name} => ${p.displayType}`).join(", ")})`;
    throw new ApiError(
      300,
      "PGRST203",
      `Could not choose the best candidate function between: ${candidates.map(describe).join(", ")}`,
      null,
      "Try renaming the parameters or the function itself in the database so function overloading can be resolved",
    );
  }
  return chosen;
}

/** Refuses what PostgREST would do with this function and this gateway does not. */
function checkSupported(fn: DbFunction): void {
  const name = `${fn.schema}.${fn.name}`;
  if (fn.returns === "rows") {
    throw notImplemented(
      `${name} returns rows (TABLE or a composite type); only functions returning a scalar, a set of scalars or void are supported by the local gateway`,
    );
  }
  if (fn.params.some((p) => p.mode === "v")) {
    throw notImplemented(`${name} is VARIADIC, which is not supported by the local gateway`);
  }
}

/** supabase-js always sends an object; an empty body means no arguments. */
function postBody(ctx: PlanContext): string {
  return ctx.body === undefined || ctx.body.trim() === "" ? "{}" : ctx.body;
}

function bodyKeys(raw: string): string[] {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw invalidBody("Empty or invalid json");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw invalidBody("Empty or invalid json");
  return Object.keys(value);
}

/** Arguments the request names: the body's keys on POST; GET takes none. */
export function requestedArgs(ctx: PlanContext): string[] {
  return ctx.method === "POST" ? bodyKeys(postBody(ctx)) : [];
}

/** The `FROM` items that call the function once and name its result `pgrst_call.pgrst_scalar`. */
function callSource(ctx: PlanContext, fn: DbFunction, params: Params): string {
  const call = (args: string) =>
    `LATERAL (SELECT ${ident(fn.schema)}.${ident(fn.name)}(${args}) AS pgrst_scalar) pgrst_call`;
  if (ctx.method !== "POST") return `(SELECT 1) pgrst_noargs, ${call("")}`;
  if (ctx.bytes !== undefined) {
    return `(SELECT 1) pgrst_noargs, ${call(`pg_catalog.decode(${params.text(ctx.bytes.toString("hex"))}, 'hex')`)}`;
  }
  const raw = postBody(ctx);
  const given = bodyKeys(raw);
  const typed = fn.params.filter((p) => given.includes(p.name));
  const source = bodySource({ raw, keys: given, isArray: false }, typed, { params, limitOne: true });
  const args = typed.map((p) => `${ident(p.name)} := pgrst_body.${ident(p.name)}`).join(", ");
  return `${source}, ${call(args)}`;
}

/**
 * Calls the function and shapes the result: void → 204, a set of scalars → the array of their
 * JSON values (a page of them), anything else → its bare JSON value.
 */
export function planCall(ctx: PlanContext, fn: DbFunction): Plan {
  checkSupported(fn);
  const params = new Params();
  const source = callSource(ctx, fn, params);
  // A set is paged as PostgREST pages a read: here by db-max-rows alone, as query parameters on
  // rpc/ are refused (query-params.ts).
  const page = fn.returns === "scalars" ? pageFor(ctx) : undefined;
  const body = bodyAggregate(page ? ctx.media : "object", "_t.pgrst_scalar");
  const limit = page ? ` ${limitOffsetSql(page.limit, page.offset, params)}` : "";
  const sql =
    `SELECT pg_catalog.count(_t) AS page_total, ${body} AS body ` +
    `FROM (SELECT pgrst_call.pgrst_scalar FROM ${source}${limit}) _t`;
  const read = finishRead(ctx, page ?? { offset: 0 });
  const finish: Plan["finish"] = (row) => {
    const reply = read(row);
    if (fn.returns !== "void") return reply;
    return { status: 204, headers: { "Content-Range": reply.headers["Content-Range"] ?? "*/*" } };
  };
  return { sql, params: params.values, readOnly: ctx.method !== "POST" || !fn.volatile, finish };
}
