import { CvError, type TableName, tables } from "@centrovision/core";
import { translateSqliteError } from "../sqlite-errors.js";
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
