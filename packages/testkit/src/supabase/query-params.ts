import { ApiError, parseError } from "./errors.js";
import {
  ParseFailure,
  parseColumnList,
  parseFilterKey,
  parseFilterValue,
  parseLogicTree,
  parseOrder,
  parseSelect,
} from "./query-grammar.js";
import {
  type Filter,
  FTS_OPERATORS,
  type LogicTree,
  OPERATORS,
  type OrderTerm,
  type SelectItem,
} from "./query-types.js";

/** A request's query string, parsed. Names are not yet checked against the catalog. */
export interface QueryParams {
  readonly select: readonly SelectItem[];
  readonly filters: readonly Filter[];
  readonly logic: readonly LogicTree[];
  readonly order: readonly OrderTerm[];
  /** As given; a negative limit is answered with 416 by the caller. */
  readonly limit?: number;
  readonly offset?: number;
  readonly columns?: readonly string[];
  readonly onConflict?: readonly string[];
  /** RPC arguments: on `rpc/*`, parameters whose value is not an operator expression. */
  readonly args: readonly (readonly [string, string])[];
}

const LOGIC_KEYS = new Set(["or", "and", "not.or", "not.and"]);
/** Supabase's gateway accepts the key as a query parameter and strips it before PostgREST. */
const GATEWAY_PARAMS = new Set(["apikey"]);

function parsed<T>(what: string, input: string, parse: (input: string) => T): T {
  try {
    return parse(input);
  } catch (error) {
    if (error instanceof ParseFailure) throw parseError(what, input, error.column, error.details);
    throw error;
  }
}

function notEmbedded(resource: string): ApiError {
  return new ApiError(
    400,
    "PGRST108",
    `'${resource}' is not an embedded resource in this request`,
    null,
    `Verify that '${resource}' is included in the 'select' query parameter.`,
  );
}

/** PostgREST's test for "this value is an operator expression, so the parameter is a filter". */
export function hasOperator(value: string): boolean {
  const parts = value.split(".");
  const [first] = parts;
  if (first === undefined) return false;
  if (first === "not" && parts.length > 1) return true;
  if (first === "is" || first === "in" || Object.hasOwn(OPERATORS, first)) return true;
  return (FTS_OPERATORS as readonly string[]).includes(first.split("(")[0] ?? "");
}

function integer(value: string): number | undefined {
  return /^-?[0-9]+$/.test(value) ? Number(value) : undefined;
}

/**
 * Splits query parameters the way PostgREST does: reserved names, per-level
 * `order/limit/offset/and/or`, then filters. On `rpc/*`, a parameter whose
 * value is not an operator expression is a function argument; elsewhere
 * every other parameter must be a filter. Dotted keys address embedded
 * resources, which this gateway does not support.
 */
export function parseQueryParams(entries: Iterable<[string, string]>, rpc: boolean): QueryParams {
  let select: SelectItem[] = [{ kind: "star" }];
  const filters: Filter[] = [];
  const logic: LogicTree[] = [];
  const order: OrderTerm[] = [];
  const args: [string, string][] = [];
  let limit: number | undefined;
  let offset: number | undefined;
  let columns: string[] | undefined;
  let onConflict: string[] | undefined;

  for (const [key, value] of entries) {
    if (GATEWAY_PARAMS.has(key)) continue;
    if (key === "select") select = parsed("select parameter", value, parseSelect);
    else if (key === "columns") columns = parsed("columns parameter", value, parseColumnList);
    else if (key === "on_conflict") onConflict = parsed("on_conflict parameter", value, parseColumnList);
    else if (LOGIC_KEYS.has(key))
      logic.push(parsed("logic tree", value, (v) => parseLogicTree(`${key}${v}`)));
    else {
      const segments = key.split(".");
      const last = segments.at(-1) ?? key;
      const embedded = segments.length > 1 ? (segments[0] ?? key) : undefined;
      if (["order", "limit", "offset", "and", "or"].includes(last)) {
        if (embedded !== undefined) throw notEmbedded(embedded === "not" ? (segments[1] ?? key) : embedded);
        if (last === "order") order.push(...parsed("order", value, parseOrder));
        else if (last === "limit") limit = integer(value) ?? limit;
        else offset = integer(value) ?? offset;
      } else if (rpc && !hasOperator(value) && embedded === undefined) {
        args.push([key, value]);
      } else {
        if (embedded !== undefined) throw notEmbedded(embedded);
        const field = parsed("tree path", key, parseFilterKey);
        const { negated, operation } = parsed("filter", value, parseFilterValue);
        filters.push({ field, negated, operation });
      }
    }
  }
  return {
    select,
    filters,
    logic,
    order,
    args,
    ...(limit !== undefined && { limit }),
    ...(offset !== undefined && { offset }),
    ...(columns && { columns }),
    ...(onConflict && { onConflict }),
  };
}
