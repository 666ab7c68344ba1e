import { parseStoredRow, type Row, type TableName } from "@centrovision/core";
import { type ColumnInfo, columnOf, columnsOf, ident } from "./columns.js";

/** A value as SQLite stores it: booleans are 0/1, everything else as JSON carries it. */
export type StoredValue = string | number | null;
/** A row as stored: every column, raw values. This is also what the journal records. */
export type StoredRow = Record<string, StoredValue>;

/** The stored form of one column value. Values have been validated by the table schema. */
export function encodeValue(column: ColumnInfo, value: unknown): StoredValue {
  if (value === null || value === undefined) return null;
  if (column.type === "boolean") return value ? 1 : 0;
  if (typeof value === "string" || typeof value === "number") return value;
  throw new TypeError(`[adapter-sqlite] cannot store a ${typeof value} in ${column.name}`);
}

/** Column names and stored values of a validated row or patch, skipping omitted columns. */
export function encodeColumns(table: TableName, values: Record<string, unknown>): [string[], StoredValue[]] {
  const names: string[] = [];
  const params: StoredValue[] = [];
  for (const [name, value] of Object.entries(values)) {
    if (value === undefined) continue;
    names.push(name);
    params.push(encodeValue(columnOf(table, name), value));
  }
  return [names, params];
}

/** A stored row as JavaScript values (booleans back from 0/1), not yet validated. */
export function decodeRow(table: TableName, stored: StoredRow): Record<string, unknown> {
  const row: Record<string, unknown> = {};
  for (const column of columnsOf(table)) {
    const value = stored[column.name] ?? null;
    row[column.name] = column.type === "boolean" && value !== null ? value === 1 : value;
  }
  return row;
}

/**
 * A stored row in the canonical, validated form every source returns. A row that fails its
 * schema here means the file holds something no writer should have produced; the error says so
 * instead of handing bad data on.
 */
export function toRow<T extends TableName>(table: T, stored: StoredRow): Row<T> {
  return parseStoredRow(table, decodeRow(table, stored));
}

const columnList = (table: TableName) =>
  columnsOf(table)
    .map((column) => ident(column.name))
    .join(", ");
const placeholders = (count: number) => Array.from({ length: count }, () => "?").join(", ");

export const selectRowSql = (table: TableName) =>
  `SELECT ${columnList(table)} FROM ${ident(table)} WHERE id = ?`;

export const insertSql = (table: TableName, names: readonly string[]) =>
  `INSERT INTO ${ident(table)} (${names.map(ident).join(", ")}) VALUES (${placeholders(names.length)})`;

/**
 * Insert, or overwrite the given columns of the row with the same id. A row carrying only its id
 * still counts as an edit (the trigger gives it a new version), as the other sources do.
 */
export function upsertSql(table: TableName, names: readonly string[]): string {
  const assignments = names
    .filter((name) => name !== "id")
    .map((name) => `${ident(name)} = excluded.${ident(name)}`);
  if (assignments.length === 0) assignments.push(`"id" = excluded."id"`);
  return `${insertSql(table, names)} ON CONFLICT ("id") DO UPDATE SET ${assignments.join(", ")}`;
}

export const updateSql = (table: TableName, names: readonly string[]) =>
  `UPDATE ${ident(table)} SET ${names.map((name) => `${ident(name)} = ?`).join(", ")} WHERE id = ?`;

export const deleteSql = (table: TableName) => `DELETE FROM ${ident(table)} WHERE id = ?`;

/** Every column, in table order: how a journal image is written back verbatim. */
export function putImageSql(table: TableName): string {
  return upsertSql(
    table,
    columnsOf(table).map((column) => column.name),
  );
}

export function imageParams(table: TableName, image: StoredRow): StoredValue[] {
  return columnsOf(table).map((column) => image[column.name] ?? null);
}
