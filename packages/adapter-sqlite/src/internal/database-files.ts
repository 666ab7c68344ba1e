import { basename, dirname } from "node:path";
import { isCvError } from "@centrovision/core";
import { damagedFileError, fileError } from "../sqlite-errors.js";
import type { AesKey } from "./cipher.js";
import { readIfExists } from "./disk.js";
import { decodeHeader, decodeSnapshot, type FileHeader, scanRecords } from "./file-format.js";
import { decodeOps } from "./journal-writer.js";
import { openDatabase, SchemaMismatch } from "./sql-engine.js";
import { SqlRunner } from "./sql-runner.js";
import { applyOps } from "./write-session.js";

/** The files of one database. Only `file`, `journal` and `prev` hold data worth keeping. */
export interface DatabasePaths {
  readonly dir: string;
  /** The last durable snapshot. */
  readonly file: string;
  /** Records appended since that snapshot. */
  readonly journal: string;
  /** The snapshot generation before `file`, kept until a newer one is durable. */
  readonly prev: string;
  readonly lock: string;
  readonly snapshotTmp: string;
  readonly journalTmp: string;
  readonly prevTmp: string;
}

export function databasePaths(file: string): DatabasePaths {
  return {
    dir: dirname(file),
    file,
    journal: `${file}-journal`,
    prev: `${file}.prev`,
    lock: `${file}.lock`,
    snapshotTmp: `${file}.tmp`,
    journalTmp: `${file}-journal.tmp`,
    prevTmp: `${file}.prev.tmp`,
  };
}

/** What to do about a damaged file, in words the clinic's IT person can act on. */
export function recoveryAdvice(paths: DatabasePaths): string {
  return (
    `The previous snapshot, if any, is kept at ${paths.prev} (it lacks later writes). ` +
    `Restore the ${basename(paths.file)}* files from a backup, or move them aside to start an empty local copy ` +
    "(writes not yet sent to the server would then be lost)."
  );
}

export interface LoadedJournal {
  readonly header: FileHeader;
  /** An older generation already folded into the snapshot (a crash interrupted a snapshot). */
  readonly stale: boolean;
  /** Valid records replayed. */
  readonly records: number;
  /** Bytes up to the end of the last valid record. */
  readonly goodLength: number;
  readonly fileLength: number;
  /** Why replay stopped before the end of the file (a torn or damaged tail), or null. */
  readonly problem: string | null;
}

export interface LoadedDatabase {
  readonly sql: SqlRunner;
  readonly snapshot: FileHeader;
  /** Null when there is no journal file. */
  readonly journal: LoadedJournal | null;
}

async function read(path: string): Promise<Uint8Array | null> {
  try {
    return await readIfExists(path);
  } catch (error) {
    throw fileError(error, path, "read");
  }
}

async function openSnapshot(paths: DatabasePaths, key: AesKey) {
  const advice = recoveryAdvice(paths);
  const bytes = await read(paths.file);
  if (bytes === null) throw damagedFileError(paths.file, "the snapshot file is missing", advice);
  const { header, image } = await decodeSnapshot(bytes, key, paths.file, advice);
  try {
    return { header, sql: new SqlRunner(await openDatabase(image)) };
  } catch (error) {
    if (isCvError(error)) throw error;
    const problem =
      error instanceof SchemaMismatch ? error.message : "it does not hold a readable SQLite database";
    throw damagedFileError(paths.file, problem, advice);
  }
}

/**
 * Loads the last snapshot and replays its journal into an in-memory database, without changing
 * any file and without the lock, so it also works beside a running writer: the writer decides what to do about a torn tail, a reader only reports it.
 *
 * @throws CvError naming the file when the snapshot or the journal header is damaged, the key is
 *   wrong, or the journal does not belong to this snapshot.
 */
export async function loadDatabase(paths: DatabasePaths, key: AesKey): Promise<LoadedDatabase> {
  // Journal first: a writer publishes a snapshot before its new journal, so a reader racing a
  // snapshot sees either a matching pair or a stale journal, never a journal ahead of its snapshot.
  const bytes = await read(paths.journal);
  const { header: snapshot, sql } = await openSnapshot(paths, key);
  try {
    if (bytes === null) return { sql, snapshot, journal: null };
    const advice = recoveryAdvice(paths);
    const header = await decodeHeader(bytes, key, "journal", paths.journal, advice);
    if (!header.databaseId.every((byte, i) => byte === snapshot.databaseId[i])) {
      throw damagedFileError(paths.journal, `it belongs to another database than ${paths.file}`, advice);
    }
    const base = { header, fileLength: bytes.length };
    if (header.generation < snapshot.generation) {
      return {
        sql,
        snapshot,
        journal: { ...base, stale: true, records: 0, goodLength: bytes.length, problem: null },
      };
    }
    if (header.generation > snapshot.generation) {
      throw damagedFileError(
        paths.file,
        `it is snapshot generation ${snapshot.generation} but its journal continues generation ${header.generation}, ` +
          "so the snapshot is older than the journal (was it restored from a backup or from the .prev copy?)",
        advice,
      );
    }
    const scan = await scanRecords(bytes, key, header);
    replay(sql, scan.payloads, paths, advice);
    const journal = { ...base, stale: false, records: scan.payloads.length, goodLength: scan.goodLength };
    return { sql, snapshot, journal: { ...journal, problem: scan.problem } };
  } catch (error) {
    sql.close();
    throw error;
  }
}

function replay(sql: SqlRunner, payloads: readonly Uint8Array[], paths: DatabasePaths, advice: string): void {
  if (payloads.length === 0) return;
  let index = 0;
  try {
    sql.exec("BEGIN");
    for (; index < payloads.length; index++) applyOps(sql, decodeOps(payloads[index] as Uint8Array));
    sql.exec("COMMIT");
  } catch (error) {
    sql.exec("ROLLBACK");
    // An authenticated record that does not apply is a bug or a schema mismatch, not a crash
    // artefact: stopping here and losing the acknowledged writes after it would be silent loss.
    // A JSON parse error quotes the text it choked on, which is patient data: never pass it on.
    const reason =
      error instanceof Error && !(error instanceof SyntaxError)
        ? error.message.slice(0, 120)
        : "malformed record";
    throw damagedFileError(paths.journal, `record ${index + 1} cannot be applied (${reason})`, advice);
  }
}
