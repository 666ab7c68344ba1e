import type { webcrypto } from "node:crypto";
import { importKey } from "./internal/cipher.js";
import { databasePaths, loadDatabase } from "./internal/database-files.js";
import { parseSqliteConfig } from "./sqlite-config.js";
import { translateSqliteError } from "./sqlite-errors.js";

/** A value as stored: text, REAL/INTEGER (booleans are 0/1), or NULL. */
export type SqliteStoredValue = string | number | null;

/** A private, in-memory copy of what a database file durably holds. */
export interface SqliteReader {
  readonly path: string;
  /** Snapshot generation the copy was loaded from. */
  readonly generation: number;
  /** Journal records replayed on top of the snapshot. */
  readonly replayedRecords: number;
  /** Why journal replay stopped before the end of the file (a writer crashed or is mid-append), or null. */
  readonly tailProblem: string | null;
  /**
   * Runs SQL against the copy and returns raw stored values, with bound `params`. Changes made
   * through it stay in memory and never reach the file.
   */
  all(sql: string, params?: readonly SqliteStoredValue[]): Record<string, SqliteStoredValue>[];
  close(): void;
}

/**
 * Loads the snapshot and the journal at `path` into a separate in-memory database, decrypting
 * with `key`, without taking the writer's lock or changing any file. It shares no state with a
 * source that has the file open, so it shows what was durably stored: tests use it to prove an
 * acknowledged write is on disk, tools to inspect or export a PC's copy.
 *
 * @throws CvError `unauthorized` for a wrong key, `unavailable` for a missing or damaged file.
 */
export async function openSqliteReadOnly(
  path: string,
  key: Uint8Array | webcrypto.CryptoKey,
): Promise<SqliteReader> {
  const config = parseSqliteConfig({ path, key });
  const { sql, snapshot, journal } = await loadDatabase(
    databasePaths(config.path),
    await importKey(config.key),
  );
  return {
    path: config.path,
    generation: snapshot.generation,
    replayedRecords: journal && !journal.stale ? journal.records : 0,
    tailProblem: journal?.problem ?? null,
    all(text, params = []) {
      try {
        return sql.objectsOnce(text, params) as Record<string, SqliteStoredValue>[];
      } catch (error) {
        throw translateSqliteError(error, { action: "read-only query" });
      }
    },
    close: () => sql.close(),
  };
}
