import { createHash } from "node:crypto";
import { TABLE_NAMES, type TableName, tables } from "@centrovision/core";
import { type ColumnInfo, columnsOf, ident, literal, storageOf } from "./columns.js";

/*
 * The SQLite schema, generated from the core table definitions so it cannot drift from the zod
 * schemas or from sql/0001 + 0002 (which are generated from the same intent by hand, and checked
 * against core by core's schema test). What is mirrored, and how:
 *
 *   PostgreSQL                          SQLite (STRICT tables)
 *   uuid, text, date, enum              TEXT (uuids lowercase; dates YYYY-MM-DD)
 *   timestamptz(3)                      TEXT, canonical UTC ms ISO: sorts chronologically
 *   numeric, smallint                   REAL, INTEGER
 *   boolean                             INTEGER 0/1 with a CHECK
 *   ENUM type                           TEXT with a CHECK listing the labels
 *   NOT NULL, DEFAULT, UNIQUE, FK       the same, FKs with the same ON DELETE
 *   cv_touch_row() BEFORE trigger       AFTER UPDATE trigger that re-stamps the row (below)
 *
 * Text compares with BINARY collation, which for UTF-8 is code-point order: PostgreSQL's "C".
 * Regex CHECKs (e.g. `~ '\S'`) are not repeated: SQLite has no regex engine and zod applies the
 * same patterns before any write. Multi-column `checks` are applied by the adapter to every row
 * image a write produces (see write-session.ts), with the same constraint names.
 */

/** `now()` at millisecond precision in canonical form; constant within one statement, like `now()` within a row. */
export const NOW_SQL = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

/** Rows changed by the current statement, drained by the adapter after each one (always empty at commit). */
const CHANGES_TABLE = `CREATE TABLE cv_changes (
  seq INTEGER PRIMARY KEY, tbl TEXT NOT NULL, row_id TEXT NOT NULL, old_version TEXT
) STRICT`;

/**
 * `origin` plays the role of `SET LOCAL centrovision.sync_origin`: while it is set, rows are
 * written verbatim (journal replay now; replicated rows from another node later), so the touch
 * trigger does not re-stamp them.
 */
const SESSION_TABLE = `CREATE TABLE cv_session (only INTEGER PRIMARY KEY CHECK (only = 1), origin TEXT) STRICT`;

const META_TABLE = `CREATE TABLE cv_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT`;

/**
 * The caller's own durable records (e.g. the sync engine's outbox and dead letters), written in
 * the same transaction and journal record as the rows they describe, so both survive or neither.
 * `seq` orders a collection by first insertion.
 */
const RECORDS_TABLE = `CREATE TABLE cv_records (
  collection TEXT NOT NULL,
  key TEXT NOT NULL,
  seq INTEGER NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (collection, key)
) STRICT`;

function columnDdl(table: TableName, column: ColumnInfo): string {
  const def = tables[table];
  const name = ident(column.name);
  const parts = [name, storageOf(column.type)];
  if (column.name === "id") parts.push("PRIMARY KEY");
  if (!column.nullable) parts.push("NOT NULL");
  if (column.name === "created_at" || column.name === "updated_at") parts.push(`DEFAULT (${NOW_SQL})`);
  if (column.name === "version") parts.push("DEFAULT (cv_uuid())");
  const defaults = def.defaults as Record<string, unknown>;
  if (column.name in defaults) parts.push(`DEFAULT ${literal(defaults[column.name])}`);
  if (column.labels) {
    const labels = column.labels.map(literal).join(", ");
    parts.push(`CONSTRAINT ${ident(`${table}_${column.name}_enum`)} CHECK (${name} IN (${labels}))`);
  }
  if (column.type === "boolean") {
    parts.push(`CONSTRAINT ${ident(`${table}_${column.name}_boolean`)} CHECK (${name} IN (0, 1))`);
  }
  const fk = def.foreignKeys.find((key) => key.column === column.name);
  if (fk) {
    parts.push(
      `CONSTRAINT ${ident(`${table}_${column.name}_fkey`)} REFERENCES ${ident(fk.references)} ("id")`,
      `ON DELETE ${fk.onDelete.toUpperCase()}`,
    );
  }
  return parts.join(" ");
}

function tableDdl(table: TableName): string[] {
  const def = tables[table];
  const body = columnsOf(table).map((column) => columnDdl(table, column));
  for (const columns of def.uniques) {
    body.push(
      `CONSTRAINT ${ident(`${table}_${columns.join("_")}_key`)} UNIQUE (${columns.map(ident).join(", ")})`,
    );
  }
  const statements = [`CREATE TABLE ${ident(table)} (\n  ${body.join(",\n  ")}\n) STRICT`];
  // Without an index on the child column, every parent delete scans the whole child table.
  for (const fk of def.foreignKeys) {
    if (def.uniques.some((columns) => columns[0] === fk.column)) continue;
    statements.push(
      `CREATE INDEX ${ident(`${table}_${fk.column}_idx`)} ON ${ident(table)} (${ident(fk.column)})`,
    );
  }
  return statements;
}

/**
 * What `cv_touch_row` does in PostgreSQL, as an AFTER trigger (SQLite triggers cannot assign
 * NEW): created_at and created_by kept, updated_at now, updated_by null (no verified person writes
 * here), base_version the replaced version, and a fresh version unless the writer supplied a
 * different one. The nested UPDATE does not fire this trigger again
 * (recursive triggers are off). It also runs for rows changed by ON DELETE SET NULL, as the
 * PostgreSQL trigger does. Every trigger records the row in cv_changes for the journal, with the
 * version it had before the statement (what an outbox sends as the base version).
 */
function triggerDdl(table: TableName): string[] {
  const t = ident(table);
  const note = (row: "NEW" | "OLD", oldVersion: string) =>
    `INSERT INTO cv_changes (tbl, row_id, old_version) VALUES (${literal(table)}, ${row}.id, ${oldVersion});`;
  return [
    `CREATE TRIGGER ${ident(`${table}_cv_insert`)} AFTER INSERT ON ${t} BEGIN ${note("NEW", "NULL")} END`,
    `CREATE TRIGGER ${ident(`${table}_cv_update`)} AFTER UPDATE ON ${t} BEGIN
  UPDATE ${t} SET created_at = OLD.created_at, updated_at = ${NOW_SQL}, base_version = OLD.version,
    created_by = OLD.created_by, updated_by = NULL,
    version = CASE WHEN NEW.version = OLD.version THEN cv_uuid() ELSE NEW.version END
  WHERE id = NEW.id AND (SELECT origin FROM cv_session) IS NULL;
  ${note("NEW", "OLD.version")}
END`,
    `CREATE TRIGGER ${ident(`${table}_cv_delete`)} AFTER DELETE ON ${t} BEGIN ${note("OLD", "OLD.version")} END`,
  ];
}

function buildSchema(): string[] {
  return [
    CHANGES_TABLE,
    SESSION_TABLE,
    "INSERT INTO cv_session (only, origin) VALUES (1, NULL)",
    META_TABLE,
    RECORDS_TABLE,
    "CREATE INDEX cv_records_seq_idx ON cv_records (collection, seq)",
    ...TABLE_NAMES.flatMap(tableDdl),
    ...TABLE_NAMES.flatMap(triggerDdl),
  ];
}

/** Every statement that creates an empty database, in order. */
export const SCHEMA_STATEMENTS: readonly string[] = Object.freeze(buildSchema());

/**
 * Fingerprint of the generated schema, stored in the file. A file written under other table
 * definitions is refused rather than read with the wrong columns.
 */
export const SCHEMA_HASH = createHash("sha256")
  .update(SCHEMA_STATEMENTS.join(";\n"))
  .digest("hex")
  .slice(0, 32);
