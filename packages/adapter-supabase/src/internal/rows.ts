import {
  type ColumnType,
  CvError,
  canonicalTimestamp,
  isCvError,
  parseStoredRow,
  type Row,
  type TableName,
  tables,
} from "@centrovision/core";
import * as z from "zod";

type AnyRow = Record<string, unknown>;

/**
 * The column list every request selects, instead of `*`: a column the cloud has and this version
 * does not know never reaches the caller, and one it lacks fails the request (42703) instead of
 * arriving as `undefined`.
 */
export function selectList(table: TableName): string {
  return tables[table].columns.join(",");
}

/** Checks one value of a column and returns it in canonical form, or `undefined` if unsure. */
type ColumnReader = (value: unknown) => unknown;

/** PostgreSQL's JSON rendering of `timestamptz(3)` in a UTC database: `…T05:28:31.27+00:00`. */
const UTC_TIMESTAMP = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,3}))?\+00:00$/;
const DATE = /^\d{4}-\d{2}-\d{2}$/;

function timestamp(value: unknown): unknown {
  if (typeof value !== "string") return undefined;
  const match = UTC_TIMESTAMP.exec(value);
  if (match) return `${match[1]}.${(match[2] ?? "").padEnd(3, "0")}Z`;
  try {
    return canonicalTimestamp(value);
  } catch {
    return undefined;
  }
}

function readerFor(type: ColumnType, schema: z.ZodType): ColumnReader {
  const nullable = schema instanceof z.ZodNullable;
  const inner = nullable ? (schema as z.ZodNullable).unwrap() : schema;
  const labels = inner instanceof z.ZodEnum ? new Set(inner.options.map(String)) : undefined;
  const read: ColumnReader = {
    uuid: (v: unknown) => (typeof v === "string" && v.length === 36 ? v : undefined),
    text: (v: unknown) => (typeof v === "string" ? v : undefined),
    date: (v: unknown) => (typeof v === "string" && DATE.test(v) ? v : undefined),
    timestamptz: timestamp,
    numeric: (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? v : undefined),
    integer: (v: unknown) => (Number.isSafeInteger(v) ? v : undefined),
    boolean: (v: unknown) => (typeof v === "boolean" ? v : undefined),
    enum: (v: unknown) => (typeof v === "string" && labels?.has(v) ? v : undefined),
  }[type];
  return nullable ? (v) => (v === null ? null : read(v)) : read;
}

const readers = new Map<TableName, readonly [string, ColumnReader][]>();

function readersOf(table: TableName): readonly [string, ColumnReader][] {
  let list = readers.get(table);
  if (list === undefined) {
    const def = tables[table];
    const types = def.columnTypes as Record<string, ColumnType>;
    const shape = def.rowSchema.shape as Record<string, z.ZodType>;
    list = def.columns.map((column) => [
      column,
      readerFor(types[column] as ColumnType, shape[column] as z.ZodType),
    ]);
    readers.set(table, list);
  }
  return list;
}

function fullParse<T extends TableName>(table: T, data: unknown): Row<T> {
  try {
    return parseStoredRow(table, data);
  } catch (error) {
    if (!isCvError(error)) throw error;
    const fields = error.issues.map((issue) => issue.path).join(", ");
    throw new CvError(
      "unknown",
      `[adapter-supabase] the cloud's ${table} rows do not match this version's schema (${fields}); apply the sql/ migrations`,
      { table, issues: error.issues },
    );
  }
}

/**
 * Brings a row PostgREST returned to core's canonical form (PostgreSQL renders `timestamptz` as
 * `2026-11-30T15:05:00+00:00`, core wants `2026-11-30T15:05:00.000Z`) and checks it.
 *
 * The full zod parse costs ~7 µs a row — more than the whole request overhead budget on a
 * 100-row page — so it runs on the first row of every response and on any row the fast check is
 * unsure about. Every row gets the fast check: each column's JSON type, nullability and enum
 * label (the drifts that differ row by row: a label added in the cloud, a NOT NULL dropped). Text
 * patterns and numeric ranges of later rows are left to the database's CHECK constraints, which
 * are the same migrations. A row that does not fit means the cloud's schema drifted: `unknown`,
 * naming the offending fields, never their values.
 */
export function storedRow<T extends TableName>(table: T, data: unknown, full = true): Row<T> {
  if (typeof data !== "object" || data === null || Array.isArray(data)) throw unexpectedShape(table);
  if (full) return fullParse(table, data);
  const source = data as AnyRow;
  const out: AnyRow = {};
  for (const [column, read] of readersOf(table)) {
    const value = read(source[column]);
    if (value === undefined) return fullParse(table, data);
    out[column] = value;
  }
  return out as Row<T>;
}

/** {@link storedRow} for every row of a 2xx array answer. */
export function storedRows<T extends TableName>(table: T, data: unknown): Row<T>[] {
  if (!Array.isArray(data)) throw unexpectedShape(table);
  return data.map((row, i) => storedRow(table, row, i === 0));
}

/** A 2xx JSON answer of the wrong shape: not PostgREST as supabase-js knows it. */
function unexpectedShape(table: TableName): CvError {
  return new CvError(
    "unavailable",
    `[adapter-supabase] Supabase answered a ${table} request with an unexpected body (a proxy or captive portal?)`,
    { table },
  );
}
