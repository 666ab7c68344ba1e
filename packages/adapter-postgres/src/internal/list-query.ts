import { type ColumnType, type ListQuery, type TableName, tables } from "@centrovision/core";
import {
  type Expression,
  type ExpressionBuilder,
  type RawBuilder,
  type SelectQueryBuilder,
  type SqlBool,
  sql,
} from "kysely";
import type { LooseDatabase } from "./statements.js";

type AnyRow = Record<string, unknown>;
type Builder = ExpressionBuilder<LooseDatabase, string>;

const RANGE_OPERATORS = { gt: ">", gte: ">=", lt: "<", lte: "<=" } as const;

/**
 * The column as it must be ordered and range-compared. Text compares by code point in every
 * source, so it gets `COLLATE "C"` whatever the server's default collation is (test clusters are
 * `--no-locale`, a clinic's server may be `es_MX.UTF-8`). Enums keep PostgreSQL's declaration
 * order, which the memory source reproduces. Equality needs no collation: every collation a
 * database can have as default is deterministic, where equal means byte-equal, and leaving it
 * bare keeps indexes (e.g. the unique `document_id`) usable on any server.
 */
function ordered(table: TableName, column: string): RawBuilder<unknown> {
  const type = (tables[table].columnTypes as Record<string, ColumnType>)[column];
  return type === "text" ? sql`${sql.ref(column)} collate "C"` : sql`${sql.ref(column)}`;
}

function columnCondition(
  eb: Builder,
  table: TableName,
  column: string,
  filter: unknown,
): Expression<SqlBool>[] {
  const ref = sql.ref(column);
  if (filter === null) return [eb(ref, "is", null)];
  if (typeof filter !== "object") return [eb(ref, "=", filter)];
  const conditions: Expression<SqlBool>[] = [];
  for (const [op, operand] of Object.entries(filter as AnyRow)) {
    if (operand === undefined) continue;
    if (op === "isNull") conditions.push(eb(ref, operand ? "is" : "is not", null));
    else if (op === "eq") conditions.push(eb(ref, "=", operand));
    else if (op === "neq") conditions.push(eb(ref, "<>", operand));
    else if (op === "in") {
      const list = operand as unknown[];
      // `in ()` is a syntax error in SQL; an empty list matches nothing.
      conditions.push(list.length === 0 ? sql<SqlBool>`false` : eb(ref, "in", list));
    } else {
      const operator = RANGE_OPERATORS[op as keyof typeof RANGE_OPERATORS];
      conditions.push(eb(ordered(table, column), operator, operand));
    }
  }
  return conditions;
}

/**
 * Applies a query already checked by core's `parseListQuery` (every column is one of the table's,
 * so safe as an identifier, and every operand a value the column can hold): filters as
 * parameters, the requested order with nulls placed exactly as asked, then `id` so pages are
 * stable, then limit/offset.
 */
export function applyListQuery<Q extends SelectQueryBuilder<LooseDatabase, string, AnyRow>>(
  builder: Q,
  table: TableName,
  query: ListQuery<AnyRow>,
): Q {
  let out = builder as SelectQueryBuilder<LooseDatabase, string, AnyRow>;
  const where = (query.where ?? {}) as AnyRow;
  if (Object.keys(where).length > 0) {
    out = out.where((eb) =>
      eb.and(
        Object.entries(where).flatMap(([column, filter]) =>
          filter === undefined ? [] : columnCondition(eb, table, column, filter),
        ),
      ),
    );
  }
  for (const order of query.orderBy ?? []) {
    out = out.orderBy(ordered(table, order.column), (item) => {
      const directed = order.direction === "desc" ? item.desc() : item.asc();
      if (order.nulls === "first") return directed.nullsFirst();
      return order.nulls === "last" ? directed.nullsLast() : directed;
    });
  }
  out = out.orderBy(sql.ref("id"));
  if (query.limit !== undefined) out = out.limit(query.limit);
  if (query.offset !== undefined) out = out.offset(query.offset);
  return out as Q;
}
