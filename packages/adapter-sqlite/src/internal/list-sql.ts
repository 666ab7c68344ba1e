import {
  CvError,
  canonicalTimestamp,
  type InputIssue,
  type ListQuery,
  type TableName,
} from "@centrovision/core";
import * as z from "zod";
import { type ColumnInfo, columnOf, columnsOf, ident, literal } from "./columns.js";
import type { StoredValue } from "./row-sql.js";

type AnyRow = Record<string, unknown>;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const isDate = (value: string) => z.iso.date().safeParse(value).success;
const RANGE_OPS = { gt: ">", gte: ">=", lt: "<", lte: "<=" } as const;

/**
 * Converts a filter operand to the stored form, rejecting what PostgreSQL would reject for the
 * column's type (a malformed uuid, date or timestamp, a label outside the enum). Timestamps are
 * canonicalised, so `2026-12-01T00:00:00-06:00` compares as the instant it names.
 */
function operand(column: ColumnInfo, value: unknown, path: string, issues: InputIssue[]): StoredValue {
  const fail = (message: string) => {
    issues.push({ path, message });
    return null;
  };
  switch (column.type) {
    case "boolean":
      return typeof value === "boolean" ? (value ? 1 : 0) : fail("expected true or false");
    case "numeric":
    case "integer":
      return typeof value === "number" && Number.isFinite(value) ? value : fail("expected a number");
    case "uuid":
      return typeof value === "string" && UUID.test(value) ? value.toLowerCase() : fail("expected a UUID");
    case "date":
      return typeof value === "string" && isDate(value) ? value : fail("expected a date YYYY-MM-DD");
    case "timestamptz":
      try {
        return canonicalTimestamp(String(value));
      } catch {
        return fail("expected an ISO-8601 timestamp with an offset");
      }
    case "enum":
      return typeof value === "string" && column.labels?.includes(value)
        ? value
        : fail(`expected one of ${column.labels?.join(", ")}`);
    default:
      return typeof value === "string" ? value : fail("expected text");
  }
}

/** An enum sorts and compares by label position in PostgreSQL, not alphabetically. */
const rankSql = (column: ColumnInfo) =>
  `(CASE ${ident(column.name)} ${(column.labels ?? []).map((label, i) => `WHEN ${literal(label)} THEN ${i}`).join(" ")} END)`;

function conditions(table: TableName, where: AnyRow, params: StoredValue[], issues: InputIssue[]): string[] {
  const out: string[] = [];
  for (const [name, filter] of Object.entries(where)) {
    if (filter === undefined) continue;
    const column = columnOf(table, name);
    const col = ident(name);
    const path = `where.${name}`;
    if (filter === null) {
      out.push(`${col} IS NULL`);
      continue;
    }
    if (typeof filter !== "object") {
      out.push(`${col} = ?`);
      params.push(operand(column, filter, path, issues));
      continue;
    }
    const ops = filter as Record<string, unknown>;
    if (ops.isNull !== undefined) out.push(ops.isNull ? `${col} IS NULL` : `${col} IS NOT NULL`);
    for (const [op, sign] of [
      ["eq", "="],
      ["neq", "<>"],
    ] as const) {
      if (ops[op] === undefined) continue;
      out.push(`${col} ${sign} ?`);
      params.push(operand(column, ops[op], `${path}.${op}`, issues));
    }
    for (const [op, sign] of Object.entries(RANGE_OPS)) {
      if (ops[op] === undefined) continue;
      const value = operand(column, ops[op], `${path}.${op}`, issues);
      if (column.labels) {
        out.push(`${rankSql(column)} ${sign} ?`);
        params.push(column.labels.indexOf(String(value)));
      } else {
        out.push(`${col} ${sign} ?`);
        params.push(value);
      }
    }
    if (ops.in !== undefined) {
      const list = ops.in as readonly unknown[];
      // `IN ()` is a syntax error in SQLite; an empty list matches nothing, as in PostgreSQL.
      if (list.length === 0) out.push("0");
      else {
        out.push(`${col} IN (${list.map(() => "?").join(", ")})`);
        list.forEach((item, i) => {
          params.push(operand(column, item, `${path}.in.${i}`, issues));
        });
      }
    }
  }
  return out;
}

/**
 * The SELECT for a validated list query, with PostgreSQL's semantics: NULL never equals or
 * differs from anything, nulls last ascending and first descending unless asked otherwise,
 * and `id` ascending appended so pages are stable.
 * @throws CvError `invalid_input` for operands the column's type cannot hold.
 */
export function listSql(table: TableName, query: ListQuery<AnyRow>): { text: string; params: StoredValue[] } {
  const params: StoredValue[] = [];
  const issues: InputIssue[] = [];
  const where = conditions(table, (query.where ?? {}) as AnyRow, params, issues);
  if (issues.length > 0) {
    const list = issues.map((issue) => `${issue.path}: ${issue.message}`).join("; ");
    throw new CvError("invalid_input", `[adapter-sqlite] invalid ${table} query: ${list}`, { issues, table });
  }
  const order = (query.orderBy ?? []).map((entry) => {
    const column = columnOf(table, entry.column);
    const desc = entry.direction === "desc";
    const nullsFirst = entry.nulls ? entry.nulls === "first" : desc;
    const expression = column.labels ? rankSql(column) : ident(column.name);
    return `${expression} ${desc ? "DESC" : "ASC"} NULLS ${nullsFirst ? "FIRST" : "LAST"}`;
  });
  order.push(`"id" ASC`);
  const columns = columnsOf(table)
    .map((column) => ident(column.name))
    .join(", ");
  let text = `SELECT ${columns} FROM ${ident(table)}`;
  if (where.length > 0) text += ` WHERE ${where.join(" AND ")}`;
  text += ` ORDER BY ${order.join(", ")}`;
  if (query.limit !== undefined || query.offset !== undefined) {
    text += " LIMIT ? OFFSET ?";
    params.push(query.limit ?? -1, query.offset ?? 0);
  }
  return { text, params };
}
