import { ApiError, notImplemented, parseError } from "./errors.js";
import {
  ParseFailure,
  parseColumnList,
  parseFilterKey,
  parseFilterValue,
  parseOrder,
  parseSelect,
} from "./query-grammar.js";
import type { Filter, OrderTerm, SelectItem } from "./query-types.js";

/** A request's query string, parsed. Names are not yet checked against the catalog. */
export interface QueryParams {
  readonly select: readonly SelectItem[];
  readonly filters: readonly Filter[];
  readonly order: readonly OrderTerm[];
  /** As given; a negative limit is answered with 416 by the caller. */
  readonly limit?: number;
  readonly offset?: number;
  readonly columns?: readonly string[];
  readonly onConflict?: readonly string[];
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

function integer(value: string): number | undefined {
  return /^-?[0-9]+$/.test(value) ? Number(value) : undefined;
}

/**
 * Splits query parameters the way PostgREST does: reserved names, then
 * filters. A dotted key addresses an embedded resource, and this gateway
 * embeds none. On `rpc/*` no parameter is taken: arguments come in the POST
 * body, and filtering or shaping a function's result is left out.
 */
export function parseQueryParams(entries: Iterable<[string, string]>, rpc: boolean): QueryParams {
  let select: SelectItem[] = [{ kind: "star" }];
  const filters: Filter[] = [];
  const order: OrderTerm[] = [];
  let limit: number | undefined;
  let offset: number | undefined;
  let columns: string[] | undefined;
  let onConflict: string[] | undefined;

  for (const [key, value] of entries) {
    if (GATEWAY_PARAMS.has(key)) continue;
    if (rpc) {
      throw notImplemented(
        `Query parameters on rpc/ ('${key}') are not supported by the local gateway; send the arguments as a POST body`,
      );
    }
    if (LOGIC_KEYS.has(key)) {
      throw notImplemented(
        `'${key}' filters are not supported by the local gateway; combine filters with AND`,
      );
    }
    const dot = key.indexOf(".");
    if (dot >= 0) throw notEmbedded(key.slice(0, dot));
    if (key === "select") select = parsed("select parameter", value, parseSelect);
    else if (key === "columns") columns = parsed("columns parameter", value, parseColumnList);
    else if (key === "on_conflict") onConflict = parsed("on_conflict parameter", value, parseColumnList);
    else if (key === "order") order.push(...parsed("order", value, parseOrder));
    else if (key === "limit") limit = integer(value) ?? limit;
    else if (key === "offset") offset = integer(value) ?? offset;
    else {
      const column = parsed("tree path", key, parseFilterKey);
      const { negated, operation } = parsed("filter", value, parseFilterValue);
      filters.push({ column, negated, operation });
    }
  }
  return {
    select,
    filters,
    order,
    ...(limit !== undefined && { limit }),
    ...(offset !== undefined && { offset }),
    ...(columns && { columns }),
    ...(onConflict && { onConflict }),
  };
}
