import { type ColumnType, TABLE_NAMES, type TableName, tables } from "@centrovision/core";
import * as z from "zod";

/** What the adapter needs to know about one column, read from the core table definition. */
export interface ColumnInfo {
  readonly name: string;
  readonly type: ColumnType;
  /** NULL allowed: the zod schema of the stored row is `.nullable()`. */
  readonly nullable: boolean;
  /** For enums, the labels in declaration order, which is PostgreSQL's sort order for an ENUM. */
  readonly labels: readonly string[] | null;
}

function describe(table: TableName): ColumnInfo[] {
  const def = tables[table];
  const shape = def.rowSchema.shape as Record<string, z.ZodType>;
  return def.columns.map((name) => {
    const schema = shape[name];
    if (schema === undefined) throw new TypeError(`[adapter-sqlite] ${table}.${name} has no schema`);
    const nullable = schema instanceof z.ZodNullable;
    const inner = nullable ? (schema as z.ZodNullable<z.ZodType>).unwrap() : schema;
    const type = (def.columnTypes as Record<string, ColumnType>)[name] as ColumnType;
    const labels = inner instanceof z.ZodEnum ? (inner.options as string[]) : null;
    return { name, type, nullable, labels };
  });
}

const byTable = new Map<TableName, ColumnInfo[]>(TABLE_NAMES.map((table) => [table, describe(table)]));

/** Columns of `table` in table order. */
export function columnsOf(table: TableName): readonly ColumnInfo[] {
  return byTable.get(table) as ColumnInfo[];
}

/** One column of `table`; callers have already checked the name against the definition. */
export function columnOf(table: TableName, name: string): ColumnInfo {
  const info = columnsOf(table).find((column) => column.name === name);
  if (!info) throw new TypeError(`[adapter-sqlite] ${table} has no column ${name}`);
  return info;
}

/** SQLite storage class for a column type, in a STRICT table. */
export function storageOf(type: ColumnType): "TEXT" | "REAL" | "INTEGER" {
  if (type === "numeric") return "REAL";
  if (type === "integer" || type === "boolean") return "INTEGER";
  return "TEXT";
}

/** Quotes an identifier. Names come from the core definitions, never from callers. */
export const ident = (name: string) => `"${name.replaceAll('"', '""')}"`;

/** Quotes a constant for DDL (defaults and enum labels only; row values are always bound). */
export function literal(value: unknown): string {
  if (typeof value === "boolean") return value ? "1" : "0";
  if (typeof value === "number" && Number.isFinite(value)) return String(value);
  if (typeof value === "string") return `'${value.replaceAll("'", "''")}'`;
  throw new TypeError(`[adapter-sqlite] no SQL literal for a ${typeof value} default`);
}
