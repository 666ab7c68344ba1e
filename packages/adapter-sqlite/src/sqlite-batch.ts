import { CvError, parseId, parseOrThrow, type Row, type TableName, tables } from "@centrovision/core";
import { columnsOf } from "./internal/columns.js";
import { encodeValue, type StoredRow, toRow } from "./internal/row-sql.js";
import type { WriteSession } from "./internal/write-session.js";

/** One of the caller's records: a key and a JSON value, in first-written order. */
export interface SqliteRecord<V = unknown> {
  readonly key: string;
  readonly value: V;
}

/** A row `putVerbatimSet` did not write, and the row not among the set that holds its key (if one does). */
export interface SqliteLeftRow {
  readonly id: string;
  readonly heldBy: string | null;
}

/** A row a batch changed (directly or through ON DELETE CASCADE / SET NULL). */
export interface SqliteChangedRow {
  readonly table: TableName;
  readonly id: string;
  /** The row now; null when the batch deleted it. */
  readonly row: Row<TableName> | null;
  /** Its version before the batch; null when the batch created it. */
  readonly previousVersion: string | null;
}

/**
 * The operations of one {@link SqliteSource.batch} call. Everything done through it is one
 * SQLite transaction and one fsync'd journal record: it is all durable when the batch resolves,
 * or none of it happened. Methods are synchronous and throw `CvError` like the repository's. A
 * repository's writes can join such a transaction through {@link SqliteSource.tablesWith}.
 */
export interface SqliteBatch {
  get<T extends TableName>(table: T, id: string): Row<T> | null;
  /**
   * Stores a row exactly as another tier returned it: `version`, `base_version`, `created_at`
   * and `updated_at` are kept, not re-stamped. For caches and for applying replicated rows.
   */
  putVerbatim<T extends TableName>(table: T, row: Row<T>): void;
  /**
   * Stores rows of one table as `putVerbatim` does each, their unique keys checked once all are
   * written, as the servers' sync apply does: a key that moved from one of these rows to another
   * (two patients' document numbers swapped, rooms renamed in a round) is placed. A row whose key
   * is held by a row not among them is not written, nor one waiting on such a row, nor rows that
   * claim one key together: returned, each with the id of the row holding its key (`heldBy`, null
   * when none outside them does), for the caller to place once that row has moved or gone.
   */
  putVerbatimSet<T extends TableName>(table: T, rows: readonly Row<T>[]): SqliteLeftRow[];
  /** Deletes a row without stamping anything; rows that reference it follow their `ON DELETE`. */
  deleteVerbatim(table: TableName, id: string): void;
  /** Sets one record of `collection` (a JSON-serialisable value), or removes it with `null`. */
  setRecord(collection: string, key: string, value: unknown): void;
  getRecord<V = unknown>(collection: string, key: string): V | null;
  listRecords<V = unknown>(collection: string): SqliteRecord<V>[];
  /** Every row changed so far in this batch, cascades included, once each. */
  changes(): SqliteChangedRow[];
}

type Values = Record<string, unknown>;

/** A stored image of a row that was validated against its table schema. */
function imageOf(table: TableName, row: Values): StoredRow {
  const image: StoredRow = {};
  for (const column of columnsOf(table)) image[column.name] = encodeValue(column, row[column.name]);
  return image;
}

/** A row another tier returned, validated against its table schema, as stored. */
function verbatimImage(table: TableName, row: unknown): StoredRow {
  const stored = parseOrThrow(
    tables[table].rowSchema,
    row,
    `${table} row to store verbatim`,
    table,
  ) as Values;
  return imageOf(table, stored);
}

/** Record collections and keys are plain labels: they name things, they never hold patient data. */
function checkLabel(what: string, value: string): void {
  if (typeof value !== "string" || value.length === 0 || value.length > 200) {
    throw new CvError(
      "invalid_input",
      `[adapter-sqlite] a record ${what} must be a string of 1 to 200 characters`,
    );
  }
}

export function readRecords<V>(session: Pick<WriteSession, "sql">, collection: string): SqliteRecord<V>[] {
  checkLabel("collection", collection);
  return session.sql
    .objects("SELECT key, value FROM cv_records WHERE collection = ? ORDER BY seq", [collection])
    .map((record) => ({ key: String(record.key), value: JSON.parse(String(record.value)) as V }));
}

export function createBatch(session: WriteSession): SqliteBatch {
  return {
    get: (table, id) => {
      const image = session.current(table, parseId(id, table));
      return image ? toRow(table, image) : null;
    },
    putVerbatim: (table, row) => {
      session.putVerbatim(table, verbatimImage(table, row), `${table}.putVerbatim`);
    },
    putVerbatimSet: (table, rows) =>
      session.putVerbatimSet(
        table,
        rows.map((row) => verbatimImage(table, row)),
        `${table}.putVerbatimSet`,
      ),
    deleteVerbatim: (table, id) =>
      session.deleteVerbatim(table, parseId(id, table), `${table}.deleteVerbatim`),
    setRecord: (collection, key, value) => {
      checkLabel("collection", collection);
      checkLabel("key", key);
      session.record(collection, key, value === null ? null : JSON.stringify(value));
    },
    getRecord: <V>(collection: string, key: string) => {
      checkLabel("collection", collection);
      const value = session.sql.scalar("SELECT value FROM cv_records WHERE collection = ? AND key = ?", [
        collection,
        key,
      ]);
      return value === undefined ? null : (JSON.parse(String(value)) as V);
    },
    listRecords: (collection) => readRecords(session, collection),
    changes: () =>
      session.changedRows().map(({ table, id, image, before }) => ({
        table,
        id,
        row: image === null ? null : toRow(table, image),
        previousVersion: before,
      })),
  };
}
