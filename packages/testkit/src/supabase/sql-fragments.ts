/**
 * SQL fragments for one request on a table. Identifiers come only from the
 * catalog and are quoted; every value the request carries is a text
 * parameter, cast in SQL to the type the catalog gives for its column.
 */
import type { Column, Table } from "./catalog.js";
import { undefinedColumn } from "./errors.js";
import type { Filter, OrderTerm, SelectItem } from "./query-types.js";
import { OPERATORS } from "./query-types.js";

/** The alias every statement gives the table, as PostgREST does. */
export const TABLE_ALIAS = '"pgrst_t"';

export function ident(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** Collects the statement's parameters; all are sent as text. */
export class Params {
  readonly values: (string | null)[] = [];

  /** A placeholder for `value`, typed text (`$n::text`). */
  text(value: string | null): string {
    this.values.push(value);
    return `$${this.values.length}::text`;
  }
}

export function tableFrom(table: Table): string {
  return `${ident(table.schema)}.${ident(table.name)} AS ${TABLE_ALIAS}`;
}

function columnOf(table: Table, name: string): Column {
  const column = table.columns.get(name);
  if (!column) throw undefinedColumn(table.name, name);
  return column;
}

function columnSql(column: Column): string {
  return `${TABLE_ALIAS}.${ident(column.name)}`;
}

function filterSql(table: Table, filter: Filter, params: Params): string {
  const column = columnOf(table, filter.column);
  const expr = columnSql(column);
  const operation = filter.operation;
  let condition: string;
  switch (operation.kind) {
    case "op":
      condition = `${expr} ${OPERATORS[operation.op]} ${params.text(operation.value)}::${column.type}`;
      break;
    case "in":
      condition =
        operation.values.length === 0
          ? "false"
          : `${expr} = any (select _v::${column.type} from json_array_elements_text(${params.text(JSON.stringify(operation.values))}::json) as _e(_v))`;
      break;
    case "is_null":
      condition = `${expr} IS NULL`;
      break;
  }
  return filter.negated ? `NOT (${condition})` : condition;
}

/** `WHERE …` for the filters (ANDed), or empty. */
export function whereSql(table: Table, filters: readonly Filter[], params: Params): string {
  if (filters.length === 0) return "";
  return `WHERE ${filters.map((filter) => filterSql(table, filter, params)).join(" AND ")}`;
}

/** `ORDER BY …`, or empty: PostgREST adds no implicit order. */
export function orderSql(table: Table, terms: readonly OrderTerm[]): string {
  if (terms.length === 0) return "";
  const parts = terms.map((term) => {
    const direction = term.direction ? ` ${term.direction.toUpperCase()}` : "";
    const nulls = term.nulls ? ` NULLS ${term.nulls.toUpperCase()}` : "";
    return `${columnSql(columnOf(table, term.column))}${direction}${nulls}`;
  });
  return `ORDER BY ${parts.join(", ")}`;
}

/** The projected columns. */
export function selectSql(table: Table, items: readonly SelectItem[]): string {
  return items
    .map((item) => (item.kind === "star" ? `${TABLE_ALIAS}.*` : columnSql(columnOf(table, item.name))))
    .join(", ");
}

/** `LIMIT/OFFSET` with the numbers as parameters, so paging reuses one prepared statement. */
export function limitOffsetSql(limit: number | undefined, offset: number, params: Params): string {
  const limitPart = limit === undefined ? "" : `LIMIT ${params.text(String(limit))}::int8 `;
  return offset > 0 ? `${limitPart}OFFSET ${params.text(String(offset))}::int8` : limitPart.trimEnd();
}
