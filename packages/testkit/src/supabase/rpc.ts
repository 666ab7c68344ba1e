/**
 * `rpc/<fn>` over POST (arguments from the JSON body) and GET/HEAD
 * (arguments from the query string, read only). Arguments bind by name; the
 * overload is chosen by the set of names, as PostgREST does.
 */
import type { Catalog, DbFunction, FunctionParam } from "./catalog.js";
import { ApiError, invalidBody } from "./errors.js";
import { bodySource } from "./payload.js";
import { type Plan, type PlanContext, pageFor } from "./plan.js";
import { bodyAggregate, finishRead } from "./read.js";
import {
  ident,
  limitOffsetSql,
  orderSql,
  Params,
  type Relation,
  selectSql,
  whereSql,
} from "./sql-fragments.js";

const CALL_ALIAS = '"pgrst_call"';
const JSON_TYPES = new Set(["json", "jsonb"]);

function inputs(fn: DbFunction): FunctionParam[] {
  return fn.params.filter((p) => p.mode === "i" || p.mode === "b" || p.mode === "v");
}

/** A function taking one unnamed json/jsonb argument receives the whole POST body. */
function takesWholeBody(fn: DbFunction): boolean {
  const [only, ...rest] = inputs(fn);
  return only !== undefined && rest.length === 0 && only.name === "" && JSON_TYPES.has(only.typeName);
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
  const named = overloads.filter((fn) => {
    const params = inputs(fn);
    const names = new Set(params.map((p) => p.name));
    return args.every((a) => names.has(a)) && params.every((p) => p.hasDefault || args.includes(p.name));
  });
  const candidates = named.length > 0 || !post ? named : overloads.filter(takesWholeBody);
  const [chosen, ...others] = candidates;
  if (!chosen) throw notFound(schema, name, args, post);
  if (others.length > 0) {
    const describe = (fn: DbFunction) =>
      `${fn.schema}.${fn.name}(${inputs(fn)
        .map((p) => `${p.name} => ${p.displayType}`)
        .join(", ")})`;
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

function argumentList(fn: DbFunction, given: string[], value: (p: FunctionParam) => string): string {
  return inputs(fn)
    .filter((p) => given.includes(p.name))
    .map((p) => `${p.mode === "v" ? "VARIADIC " : ""}${ident(p.name)} := ${value(p)}`)
    .join(", ");
}

/** The `FROM` items that call the function once and name its output `pgrst_call`. */
function callSource(ctx: PlanContext, fn: DbFunction, params: Params): string {
  const qualified = `${ident(fn.schema)}.${ident(fn.name)}`;
  const scalar = fn.returns.kind !== "composite";
  const call = (args: string) =>
    scalar
      ? `LATERAL (SELECT ${qualified}(${args}) AS pgrst_scalar) ${CALL_ALIAS}`
      : `LATERAL ${qualified}(${args}) AS ${CALL_ALIAS}`;
  if (ctx.method !== "POST") {
    const given = ctx.query.args.map(([key]) => key);
    const values = new Map(ctx.query.args);
    const args = argumentList(fn, given, (p) => `${params.text(values.get(p.name) ?? null)}::${p.type}`);
    return `(SELECT 1) pgrst_noargs, ${call(args)}`;
  }
  const raw = postBody(ctx);
  if (takesWholeBody(fn))
    return `(SELECT 1) pgrst_noargs, ${call(`${params.text(raw)}::${inputs(fn)[0]?.type}`)}`;
  const given = bodyKeys(raw);
  const typed = inputs(fn).filter((p) => given.includes(p.name));
  const payload = { raw, keys: given, isArray: false };
  const columns = typed.map((p) => ({ name: p.name, type: p.type, typeName: p.typeName, defaultExpr: null }));
  const source = bodySource(payload, columns, { params, missingDefault: false, limitOne: true });
  return `${source}, ${call(argumentList(fn, given, (p) => `pgrst_body.${ident(p.name)}`))}`;
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

/** Arguments the request names: body keys on POST (unless the function takes the whole body), else query args. */
export function requestedArgs(ctx: PlanContext): string[] {
  if (ctx.method !== "POST") return ctx.query.args.map(([key]) => key);
  return bodyKeys(postBody(ctx));
}

/**
 * Calls the function in a CTE (so a volatile function runs once even when
 * counted) and shapes the result: void → 204, scalar → bare JSON value,
 * composite → object, SETOF → array that select/filters/order/limit apply to.
 */
export function planCall(ctx: PlanContext, fn: DbFunction): Plan {
  const params = new Params();
  const source = `SELECT ${CALL_ALIAS}.* FROM ${callSource(ctx, fn, params)}`;
  const columns = fn.returns.kind === "composite" ? fn.returns.columns : new Map();
  const relation: Relation = { name: fn.name, alias: CALL_ALIAS, columns };
  const scalar = fn.returns.kind !== "composite";
  const select = scalar
    ? `${CALL_ALIAS}.pgrst_scalar`
    : selectSql(relation, ctx.query.select, ctx.catalog.castTypes, params);
  const where = whereSql(relation, ctx.query.filters, ctx.query.logic, params);
  const order = orderSql(relation, ctx.query.order, params);
  const page = fn.returnsSet ? pageFor(ctx) : { offset: 0 };
  const limit = limitOffsetSql(page.limit, page.offset, params);
  const from = `pgrst_source AS ${CALL_ALIAS}`;
  const column = scalar ? "_t.pgrst_scalar" : "_t";
  const body = fn.returnsSet
    ? bodyAggregate(ctx, column)
    : bodyAggregate({ ...ctx, media: "object" }, column);
  const total = ctx.prefs.count ? `(SELECT pg_catalog.count(*) FROM ${from} ${where})` : "null";
  const sql =
    `WITH pgrst_source AS (${source}) SELECT ${total} AS total, pg_catalog.count(_t) AS page_total, ${body} AS body ` +
    `FROM (SELECT ${select} FROM ${from} ${where} ${order} ${limit}) _t`;
  const readOnly = ctx.method !== "POST" || !fn.volatile;
  const read = finishRead(ctx, page);
  const finish: Plan["finish"] = (row) => {
    const reply = read(row);
    if (fn.returns.kind !== "void") return reply;
    return { status: 204, headers: { "Content-Range": reply.headers["Content-Range"] ?? "*/*" } };
  };
  return { sql, params: params.values, readOnly, finish };
}
