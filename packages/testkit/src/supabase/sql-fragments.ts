/**
 * SQL fragments for one request. Identifiers come only from the catalog and
 * are quoted; every value the request carries is a text parameter, cast in
 * SQL to the type the catalog gives for its column.
 */
import type { Column } from "./catalog.js";
import { ApiError, undefinedColumn } from "./errors.js";
import type { FieldRef, Filter, LogicTree, OrderTerm, SelectItem } from "./query-types.js";
import { OPERATORS } from "./query-types.js";

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

/** Something rows are read from: a table, or what a function call returned. */
export interface Relation {
  /** The name error messages use. */
  readonly name: string;
  /** The SQL alias its columns are qualified with (quoted). */
  readonly alias: string;
  readonly columns: ReadonlyMap<string, Column>;
}

const TEXT = '"pg_catalog"."text"';
const TEXTUAL_OPERATORS = new Set(["like", "ilike", "match", "imatch"]);
const FTS_FUNCTIONS = {
  fts: "to_tsquery",
  plfts: "plainto_tsquery",
  phfts: "phraseto_tsquery",
  wfts: "websearch_to_tsquery",
} as const;
const IS_SQL = {
  null: "IS NULL",
  not_null: "IS NOT NULL",
  true: "IS TRUE",
  false: "IS FALSE",
  unknown: "IS UNKNOWN",
} as const;

export function columnOf(relation: Relation, name: string): Column {
  const column = relation.columns.get(name);
  if (!column) throw undefinedColumn(relation.name, name);
  return column;
}

/** A field with its JSON path; `type` is what filter values are cast to. */
export function fieldExpr(
  relation: Relation,
  field: FieldRef,
  params: Params,
): { sql: string; type: string } {
  const column = columnOf(relation, field.name);
  let sql = `${relation.alias}.${ident(column.name)}`;
  let type = column.type;
  for (const step of field.path) {
    const key = step.isIndex ? `${params.text(step.key)}::int4` : params.text(step.key);
    sql = `(${sql} ${step.arrow} ${key})`;
    type =
      step.arrow === "->>"
        ? TEXT
        : column.typeName === "json"
          ? '"pg_catalog"."json"'
          : '"pg_catalog"."jsonb"';
  }
  return { sql, type };
}

function filterSql(relation: Relation, filter: Filter, params: Params): string {
  const { sql: expr, type } = fieldExpr(relation, filter.field, params);
  const operation = filter.operation;
  let condition: string;
  switch (operation.kind) {
    case "op": {
      const value =
        operation.op === "like" || operation.op === "ilike"
          ? operation.value.replaceAll("*", "%")
          : operation.value;
      const operand = TEXTUAL_OPERATORS.has(operation.op)
        ? params.text(value)
        : `${params.text(value)}::${type}`;
      condition = `${expr} ${OPERATORS[operation.op]} ${operand}`;
      break;
    }
    case "in":
      condition =
        operation.values.length === 0
          ? "false"
          : `${expr} = any (select _v::${type} from json_array_elements_text(${params.text(JSON.stringify(operation.values))}::json) as _e(_v))`;
      break;
    case "is":
      condition = `${expr} ${IS_SQL[operation.value]}`;
      break;
    case "fts": {
      const language =
        operation.language === undefined ? "" : `${params.text(operation.language)}::regconfig, `;
      condition = `${expr} @@ ${FTS_FUNCTIONS[operation.op]}(${language}${params.text(operation.value)})`;
      break;
    }
  }
  return filter.negated ? `NOT (${condition})` : condition;
}

function logicSql(relation: Relation, tree: LogicTree, params: Params): string {
  if (tree.kind === "filter") return filterSql(relation, tree.filter, params);
  const joined = tree.children
    .map((child) => logicSql(relation, child, params))
    .join(` ${tree.op.toUpperCase()} `);
  return `${tree.negated ? "NOT " : ""}(${joined})`;
}

/** `WHERE …` for the filters and logic trees (ANDed), or empty. */
export function whereSql(
  relation: Relation,
  filters: readonly Filter[],
  logic: readonly LogicTree[],
  params: Params,
): string {
  const conditions = [
    ...filters.map((filter) => filterSql(relation, filter, params)),
    ...logic.map((tree) => logicSql(relation, tree, params)),
  ];
  return conditions.length === 0 ? "" : `WHERE ${conditions.join(" AND ")}`;
}

/** `ORDER BY …`, or empty: PostgREST adds no implicit order. */
export function orderSql(relation: Relation, terms: readonly OrderTerm[], params: Params): string {
  if (terms.length === 0) return "";
  const parts = terms.map((term) => {
    const direction = term.direction ? ` ${term.direction.toUpperCase()}` : "";
    const nulls = term.nulls ? ` NULLS ${term.nulls.toUpperCase()}` : "";
    return `${fieldExpr(relation, term.field, params).sql}${direction}${nulls}`;
  });
  return `ORDER BY ${parts.join(", ")}`;
}

function outputName(item: Extract<SelectItem, { kind: "field" }>): string {
  const lastKey = [...item.field.path].reverse().find((step) => !step.isIndex)?.key;
  const name = item.alias ?? lastKey ?? item.field.name;
  // NUL would end the statement text on the wire; PostgreSQL accepts no such name anyway.
  if (name.includes("\0"))
    throw new ApiError(400, "PGRST100", "Names in select cannot contain NUL characters");
  return name;
}

/** The projected columns; casts only to types the catalog knows. */
export function selectSql(
  relation: Relation,
  items: readonly SelectItem[],
  castTypes: ReadonlyMap<string, string>,
  params: Params,
): string {
  return items
    .map((item) => {
      if (item.kind === "star") return `${relation.alias}.*`;
      const { sql } = fieldExpr(relation, item.field, params);
      let expr = sql;
      if (item.cast !== undefined) {
        const type = castTypes.get(item.cast.toLowerCase());
        if (!type) throw new ApiError(400, "42704", `type "${item.cast}" does not exist`);
        expr = `CAST(${sql} AS ${type})`;
      }
      return `${expr} AS ${ident(outputName(item))}`;
    })
    .join(", ");
}

/** `LIMIT/OFFSET` with the numbers as parameters, so paging reuses one prepared statement. */
export function limitOffsetSql(limit: number | undefined, offset: number, params: Params): string {
  const limitPart = limit === undefined ? "" : `LIMIT ${params.text(String(limit))}::int8 `;
  return offset > 0 ? `${limitPart}OFFSET ${params.text(String(offset))}::int8` : limitPart.trimEnd();
}
