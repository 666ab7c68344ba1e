import { CvError, type TableName, tables } from "@centrovision/core";
import type { SqliteLeftRow } from "../sqlite-batch.js";
import { translateSqliteError } from "../sqlite-errors.js";
import { columnOf, ident, storageOf } from "./columns.js";
import type { ForeignKeyProblem } from "./foreign-key-diagnosis.js";
import {
  decodeRow,
  deleteSql,
  imageParams,
  putImageSql,
  type StoredRow,
  type StoredValue,
  selectRowSql,
} from "./row-sql.js";
import type { SqlRunner } from "./sql-runner.js";

/**
 * One change in a journal record: the image of a row after a statement, or its deletion.
 * Replaying images in order reproduces every intermediate state, so a sequence that was valid
 * when written (unique keys moving between rows, cascades) is valid again on replay.
 */
export type JournalOp =
  | readonly ["put", TableName, StoredRow]
  | readonly ["del", TableName, string]
  | readonly ["rec", string, string, number, string | null];

const PUT_RECORD_SQL =
  "INSERT INTO cv_records (collection, key, seq, value) VALUES (?, ?, ?, ?) " +
  "ON CONFLICT (collection, key) DO UPDATE SET value = excluded.value";
const DELETE_RECORD_SQL = "DELETE FROM cv_records WHERE collection = ? AND key = ?";
const NEXT_SEQ_SQL = "SELECT coalesce(max(seq), 0) + 1 FROM cv_records";
/** Images whose unique key is looked up in one statement (two columns: 800 of SQLite's parameters). */
const HOLDERS_CHUNK = 400;
/** The holder of a key several images of one set claim: no row's id, so none of them is written. */
const SHARED_KEY = "";

export interface StatementContext {
  readonly action: string;
  readonly table: TableName;
  /** Names the broken reference when SQLite reports a foreign-key failure. */
  readonly diagnose?: () => ForeignKeyProblem | undefined;
}

/**
 * The changes of one write call, collected statement by statement inside its transaction.
 * The `cv_changes` triggers note every row a statement touched, including rows changed by
 * ON DELETE CASCADE / SET NULL, so the journal gets the call's full effect.
 */
export class WriteSession {
  readonly ops: JournalOp[] = [];
  /** The latest image of each row changed so far, so callers need not read it again. */
  private readonly latest = new Map<string, StoredRow | null>();
  /** The version each changed row had before this session first touched it (null: it did not exist). */
  private readonly before = new Map<string, string | null>();

  constructor(readonly sql: SqlRunner) {}

  /** The row as the last statement left it: from this session's images, else from the table. */
  current(table: TableName, id: string): StoredRow | null {
    const image = this.latest.get(`${table}:${id}`);
    return image === undefined ? this.read(table, id) : image;
  }

  /** Every row this session changed: its latest image (null once deleted) and its version before. */
  changedRows(): { table: TableName; id: string; image: StoredRow | null; before: string | null }[] {
    return [...this.latest].map(([key, image]) => {
      const split = key.indexOf(":");
      return {
        table: key.slice(0, split) as TableName,
        id: key.slice(split + 1),
        image,
        before: this.before.get(key) ?? null,
      };
    });
  }

  /** The row as stored now, or null. */
  read(table: TableName, id: string): StoredRow | null {
    return (this.sql.objects(selectRowSql(table), [id])[0] as StoredRow | undefined) ?? null;
  }

  /**
   * Runs one statement and records the resulting image of every row it changed.
   * @throws CvError `constraint` when the statement or a multi-column rule is violated.
   */
  statement(text: string, params: readonly StoredValue[], context: StatementContext): void {
    try {
      this.sql.run(text, params);
    } catch (error) {
      const foreignKey = /^FOREIGN KEY/.test(error instanceof Error ? error.message : "")
        ? context.diagnose?.()
        : undefined;
      throw translateSqliteError(error, {
        action: context.action,
        table: context.table,
        ...(foreignKey && { foreignKey }),
      });
    }
    this.collect(context.action);
  }

  /**
   * Writes a row image as given, versions and timestamps included (the touch trigger stands
   * aside, as for journal replay): how a cache copies rows another tier stored.
   */
  putVerbatim(table: TableName, image: StoredRow, action: string): void {
    this.verbatim(() => this.statement(putImageSql(table), imageParams(table, image), { action, table }));
  }

  /**
   * Writes images of one table verbatim as a set whose unique keys are checked once all are
   * written, as the servers' sync apply checks them (sql/0021): a key that moved from one image's
   * row to another's (a swap, a round) is placed. The row holding such a key has it moved aside
   * first, and gets its own image before the batch ends. An image whose key a row outside the
   * set holds (or one that stays, being left itself) is not written: returned, with that row.
   */
  putVerbatimSet(table: TableName, images: readonly StoredRow[], action: string): SqliteLeftRow[] {
    const incoming = new Set(images.map((image) => String(image.id)));
    const holders = tables[table].uniques.map((columns) => ({
      columns,
      of: this.holders(table, columns, images),
    }));
    // Left: a key held outside the set, or by a row of the set that is left and keeps it.
    const left = new Map<string, string | null>();
    for (let grew = true; grew; ) {
      grew = false;
      for (const { of } of holders) {
        for (const [id, holder] of of) {
          if (left.has(id) || (incoming.has(holder) && !left.has(holder))) continue;
          left.set(id, incoming.has(holder) || holder === SHARED_KEY ? null : holder);
          grew = true;
        }
      }
    }
    let deferred = false;
    for (const { columns, of } of holders) {
      const moving = new Set([...of].filter(([id]) => !left.has(id)).map(([, holder]) => holder));
      for (const holder of moving) deferred = this.moveAside(table, holder, columns, action) || deferred;
    }
    for (const image of images) {
      if (!left.has(String(image.id))) this.putVerbatim(table, image, action);
    }
    if (deferred) this.endDeferral(table, action);
    return [...left].map(([id, heldBy]) => ({ id, heldBy }));
  }

  /**
   * Ends the foreign-key deferral a move aside began, once the set is written: the rest of the
   * batch is checked statement by statement again, and a reference the set broke fails here, where
   * the batch rolls back, not at its commit (after its journal record: the file would not reopen).
   */
  private endDeferral(table: TableName, action: string): void {
    this.sql.exec("PRAGMA defer_foreign_keys = OFF");
    if (this.sql.objectsOnce(`PRAGMA foreign_key_check(${ident(table)})`).length > 0) {
      throw new CvError("constraint", `[adapter-sqlite] ${action}: a foreign key would be broken`, { table });
    }
  }

  /**
   * For each image whose `columns` another row holds now: its id → that row's id. Images of the
   * set that claim one key together (rows read from the tier at different moments) are held by
   * `SHARED_KEY`, no row's id: none of them is written.
   */
  private holders(
    table: TableName,
    columns: readonly string[],
    images: readonly StoredRow[],
  ): Map<string, string> {
    const found = new Map<string, string>();
    const keyed = images.filter((image) => columns.every((column) => (image[column] ?? null) !== null));
    const keyOf = (values: readonly unknown[]) => JSON.stringify(values);
    const claims = new Map<string, string[]>();
    for (const image of keyed) {
      const key = keyOf(columns.map((column) => image[column]));
      claims.set(key, [...(claims.get(key) ?? []), String(image.id)]);
    }
    for (const ids of claims.values()) {
      if (ids.length > 1) for (const id of ids) found.set(id, SHARED_KEY);
    }
    const target = columns.length === 1 ? ident(columns[0] as string) : `(${columns.map(ident).join(", ")})`;
    const tuple = `(${columns.map(() => "?").join(", ")})`;
    for (let start = 0; start < keyed.length; start += HOLDERS_CHUNK) {
      const chunk = keyed.slice(start, start + HOLDERS_CHUNK);
      const held = new Map(
        this.sql
          .objectsOnce(
            `SELECT id, ${columns.map(ident).join(", ")} FROM ${ident(table)} WHERE ${target} IN (VALUES ${chunk.map(() => tuple).join(", ")})`,
            chunk.flatMap((image) => columns.map((column) => image[column] ?? null)),
          )
          .map((row) => [keyOf(columns.map((column) => row[column])), String(row.id)]),
      );
      for (const image of chunk) {
        const holder = held.get(keyOf(columns.map((column) => image[column])));
        if (holder !== undefined && holder !== String(image.id) && !found.has(String(image.id))) {
          found.set(String(image.id), holder);
        }
      }
    }
    return found;
  }

  /**
   * Frees the `columns` key a row holds, until its own image is written in this batch: a text
   * column of the key (not an enum's) takes a value no row has, else a reference column takes the
   * row's own id, foreign keys then deferred (true) until `endDeferral`.
   */
  private moveAside(table: TableName, id: string, columns: readonly string[], action: string): boolean {
    const references = new Set<string>(tables[table].foreignKeys.map((fk) => fk.column));
    const text = columns.find((name) => {
      const column = columnOf(table, name);
      return !references.has(name) && storageOf(column.type) === "TEXT" && column.labels === null;
    });
    const column = text ?? columns.find((name) => references.has(name));
    if (column === undefined) {
      throw new TypeError(
        `[adapter-sqlite] ${table}'s key (${columns.join(", ")}) has no column to move aside`,
      );
    }
    if (text === undefined) this.sql.exec("PRAGMA defer_foreign_keys = ON");
    this.verbatim(() =>
      this.statement(
        `UPDATE ${ident(table)} SET ${ident(column)} = ? WHERE id = ?`,
        [text ? `cv-aside:${id}` : id, id],
        {
          action,
          table,
        },
      ),
    );
    return text === undefined;
  }

  /** Deletes a row (and what cascades from it) without stamping anything. */
  deleteVerbatim(table: TableName, id: string, action: string): void {
    this.verbatim(() => this.statement(deleteSql(table), [id], { action, table }));
  }

  private verbatim(work: () => void): void {
    this.sql.run("UPDATE cv_session SET origin = 'verbatim'");
    try {
      work();
    } finally {
      this.sql.run("UPDATE cv_session SET origin = NULL");
    }
  }

  /** Sets (or, with `null`, removes) one of the caller's records, in this write's journal record. */
  record(collection: string, key: string, value: string | null): void {
    if (value === null) {
      this.sql.run(DELETE_RECORD_SQL, [collection, key]);
      this.ops.push(["rec", collection, key, 0, null]);
      return;
    }
    const existing = this.sql.scalar("SELECT seq FROM cv_records WHERE collection = ? AND key = ?", [
      collection,
      key,
    ]);
    const seq = Number(existing ?? this.sql.scalar(NEXT_SEQ_SQL));
    this.sql.run(PUT_RECORD_SQL, [collection, key, seq, value]);
    this.ops.push(["rec", collection, key, seq, value]);
  }

  private collect(action: string): void {
    const changed = this.sql.objects("SELECT tbl, row_id, old_version FROM cv_changes ORDER BY seq");
    this.sql.run("DELETE FROM cv_changes");
    const seen = new Set<string>();
    for (const change of changed) {
      const table = change.tbl as TableName;
      const id = String(change.row_id);
      if (!this.before.has(`${table}:${id}`)) {
        this.before.set(`${table}:${id}`, change.old_version === null ? null : String(change.old_version));
      }
      if (seen.has(`${table}:${id}`)) continue;
      seen.add(`${table}:${id}`);
      const image = this.read(table, id);
      this.latest.set(`${table}:${id}`, image);
      if (image === null) {
        this.ops.push(["del", table, id]);
        continue;
      }
      checkRules(table, image, action);
      this.ops.push(["put", table, image]);
    }
  }
}

/**
 * The multi-column CHECKs of the core definition (e.g. `appointments_ends_after_start`) applied to
 * a row as stored, so a patch that breaks a rule against the stored row fails like in PostgreSQL.
 */
function checkRules(table: TableName, image: StoredRow, action: string): void {
  const row = decodeRow(table, image);
  for (const check of tables[table].checks) {
    if (!check.valid(row as never)) {
      throw new CvError(
        "constraint",
        `[adapter-sqlite] ${action}: ${table}.${check.field} ${check.message}`,
        {
          table,
          constraint: check.constraint,
        },
      );
    }
  }
}

/**
 * Writes journal images back verbatim. `origin` is set so the touch trigger keeps the recorded
 * versions and timestamps, and foreign keys are checked at commit so the order of a cascade's
 * images cannot matter. Runs inside the caller's transaction.
 */
export function applyOps(sql: SqlRunner, ops: readonly JournalOp[]): void {
  sql.exec("PRAGMA defer_foreign_keys = ON");
  sql.run("UPDATE cv_session SET origin = 'journal'");
  for (const op of ops) {
    if (op[0] === "put") sql.run(putImageSql(op[1]), imageParams(op[1], op[2]));
    else if (op[0] === "del") sql.run(deleteSql(op[1]), [op[2]]);
    else if (op[4] === null) sql.run(DELETE_RECORD_SQL, [op[1], op[2]]);
    else sql.run(PUT_RECORD_SQL, [op[1], op[2], op[3], op[4]]);
  }
  sql.run("UPDATE cv_session SET origin = NULL");
  sql.run("DELETE FROM cv_changes");
}
