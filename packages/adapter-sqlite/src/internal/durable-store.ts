import { webcrypto } from "node:crypto";
import { access, copyFile, link, mkdir, open, rename, rm, stat } from "node:fs/promises";
import type { CvError } from "@centrovision/core";
import { damagedFileError, fileError } from "../sqlite-errors.js";
import type { AesKey } from "./cipher.js";
import { type DatabasePaths, databasePaths, loadDatabase, recoveryAdvice } from "./database-files.js";
import { readIfExists, syncDirectory, writeFileDurably } from "./disk.js";
import { encodeHeader, encodeSnapshot, type FileHeader, HEADER_BYTES } from "./file-format.js";
import { acquireLock } from "./file-lock.js";
import { encodeOps, JournalWriter } from "./journal-writer.js";
import { openDatabase } from "./sql-engine.js";
import type { SqlRunner } from "./sql-runner.js";
import type { JournalOp } from "./write-session.js";

/** What opening the file found and repaired. */
export interface RecoveryReport {
  /** Journal records replayed on top of the snapshot. */
  readonly replayedRecords: number;
  /**
   * A torn or damaged journal tail (a crash mid-append): its size, why it was rejected, and
   * where an (encrypted) copy was kept. Null when the journal ended cleanly.
   */
  readonly discardedTail: {
    readonly bytes: number;
    readonly reason: string;
    readonly savedAs: string;
  } | null;
}

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

/**
 * The files behind one writer: snapshot + journal, the lock, and the in-memory database they
 * load into. Methods that change files must be called one at a time (the source's write queue).
 */
export class DurableStore {
  private snapshotting = false;
  /** Journal size at which the next snapshot is due; pushed back after a failed attempt. */
  private snapshotDueAt: number;

  private constructor(
    readonly paths: DatabasePaths,
    readonly sql: SqlRunner,
    readonly recovery: RecoveryReport,
    private readonly key: AesKey,
    private snapshotHeader: FileHeader,
    private journal: JournalWriter,
    private readonly snapshotAfterBytes: number,
    private readonly release: () => Promise<void>,
  ) {
    this.snapshotDueAt = snapshotAfterBytes;
  }

  /** Opens (or creates) the database at `file`: lock, load, replay, and set aside a torn tail. */
  static async open(file: string, key: AesKey, snapshotAfterBytes: number): Promise<DurableStore> {
    const paths = databasePaths(file);
    await mkdir(paths.dir, { recursive: true, mode: 0o700 }).catch((error: unknown) => {
      throw fileError(error, paths.dir, "create the folder");
    });
    const release = await acquireLock(paths.lock, paths.file);
    try {
      // Leftovers of a snapshot interrupted by a crash: incomplete, encrypted, superseded.
      await Promise.all(
        [paths.snapshotTmp, paths.journalTmp, paths.prevTmp].map((p) => rm(p, { force: true })),
      );
      if (!(await exists(paths.file))) await createDatabase(paths, key);
      const loaded = await loadDatabase(paths, key);
      const { sql, snapshot, journal } = loaded;
      try {
        let writer: JournalWriter;
        let discardedTail: RecoveryReport["discardedTail"] = null;
        if (journal === null || journal.stale) {
          writer = await startJournal(paths, key, snapshot);
        } else {
          if (journal.problem !== null) {
            discardedTail = await setTailAside(paths, journal.goodLength, journal.problem);
          }
          writer = await JournalWriter.open(
            paths.journal,
            journal.header,
            key,
            journal.goodLength,
            journal.records,
          );
        }
        const recovery = { replayedRecords: journal?.stale ? 0 : (journal?.records ?? 0), discardedTail };
        return new DurableStore(paths, sql, recovery, key, snapshot, writer, snapshotAfterBytes, release);
      } catch (error) {
        sql.close();
        throw error;
      }
    } catch (error) {
      await release();
      throw error;
    }
  }

  /** True when the journal has grown enough to be folded into a new snapshot. */
  get wantsSnapshot(): boolean {
    return !this.snapshotting && this.journal.broken === null && this.journal.bytes >= this.snapshotDueAt;
  }

  /** Why writes are refused, or null. */
  get broken(): CvError | null {
    return this.journal.broken;
  }

  /** Makes the changes of one write call durable: one journal record, fsync'd. */
  async commit(ops: readonly JournalOp[]): Promise<void> {
    await this.journal.append(encodeOps(ops));
  }

  /** Marks the store unusable for writes, e.g. when memory and journal may disagree. */
  poison(error: CvError): void {
    this.journal.poison(error);
  }

  /** Proves the journal is in place and the disk answers. */
  async check(): Promise<void> {
    // Mid-snapshot the journal is being swapped; the folder answering is the proof available.
    if (!this.snapshotting) return this.journal.check();
    try {
      await stat(this.paths.dir);
    } catch (error) {
      throw fileError(error, this.paths.dir, "reach");
    }
  }

  /**
   * Folds the journal into a new snapshot generation. Order matters for crash safety:
   * both new files are written and fsync'd under temporary names; the current snapshot is
   * hard-linked to `.prev`; then the snapshot is renamed into place (the point of no return)
   * and the new empty journal after it, and the folder is fsync'd. A crash at any step leaves
   * either the old pair or the new snapshot with a stale journal, which open() recognises.
   * Must run with no transaction open (sql.js cannot export inside one).
   */
  async snapshot(): Promise<void> {
    if (this.journal.broken) throw this.journal.broken;
    this.snapshotting = true;
    try {
      const image = this.sql.db.export();
      const { databaseId } = this.snapshotHeader;
      const generation = this.snapshotHeader.generation + 1;
      const header = await encodeHeader(this.key, "snapshot", databaseId, generation);
      const journalHeader = await encodeHeader(this.key, "journal", databaseId, generation);
      try {
        await writeFileDurably(this.paths.snapshotTmp, await encodeSnapshot(this.key, header, image));
        await writeFileDurably(this.paths.journalTmp, [journalHeader.bytes]);
        await keepPrevious(this.paths);
        await rename(this.paths.snapshotTmp, this.paths.file);
      } catch (error) {
        await Promise.all(
          [this.paths.snapshotTmp, this.paths.journalTmp].map((p) => rm(p, { force: true })),
        ).catch(() => {});
        this.snapshotDueAt = this.journal.bytes + this.snapshotAfterBytes / 4;
        throw fileError(error, this.paths.file, "write a new snapshot of");
      }
      let next: JournalWriter;
      try {
        await rename(this.paths.journalTmp, this.paths.journal);
        await syncDirectory(this.paths.dir);
        next = await JournalWriter.open(this.paths.journal, journalHeader, this.key, HEADER_BYTES, 0);
      } catch (error) {
        // The new snapshot is in place: records appended to the old journal would be skipped
        // as stale on the next open, so no write may be acknowledged until a reopen.
        const failure = fileError(error, this.paths.journal, "start a new journal");
        this.journal.poison(failure);
        throw failure;
      }
      await this.journal.close().catch(() => {});
      this.journal = next;
      this.snapshotHeader = header;
      this.snapshotDueAt = this.snapshotAfterBytes;
    } finally {
      this.snapshotting = false;
    }
  }

  /** Snapshots if anything was written since the last one, then releases the files and the lock. */
  async close(): Promise<void> {
    try {
      if (this.journal.recordCount > 0 && this.journal.broken === null) await this.snapshot();
    } finally {
      await this.journal.close().catch(() => {});
      this.sql.close();
      await this.release();
    }
  }
}

/** A new, empty database: snapshot generation 1 and its journal, both durable. */
async function createDatabase(paths: DatabasePaths, key: AesKey): Promise<void> {
  if ((await exists(paths.journal)) || (await exists(paths.prev))) {
    throw damagedFileError(
      paths.file,
      "the snapshot file is missing but its journal or previous copy exists",
      recoveryAdvice(paths),
    );
  }
  const db = await openDatabase();
  const image = db.export();
  db.close();
  const databaseId = webcrypto.getRandomValues(new Uint8Array(16));
  const header = await encodeHeader(key, "snapshot", databaseId, 1);
  try {
    await writeFileDurably(paths.snapshotTmp, await encodeSnapshot(key, header, image));
    await rename(paths.snapshotTmp, paths.file);
    await syncDirectory(paths.dir);
  } catch (error) {
    throw fileError(error, paths.file, "create");
  }
}

/** A fresh journal for the snapshot's generation, published atomically. */
async function startJournal(paths: DatabasePaths, key: AesKey, snapshot: FileHeader): Promise<JournalWriter> {
  const header = await encodeHeader(key, "journal", snapshot.databaseId, snapshot.generation);
  try {
    await writeFileDurably(paths.journalTmp, [header.bytes]);
    await rename(paths.journalTmp, paths.journal);
    await syncDirectory(paths.dir);
  } catch (error) {
    throw fileError(error, paths.journal, "create");
  }
  return JournalWriter.open(paths.journal, header, key, HEADER_BYTES, 0);
}

/** The current snapshot becomes `.prev` (a hard link: no copy of 50 MB), replacing the older one. */
async function keepPrevious(paths: DatabasePaths): Promise<void> {
  await rm(paths.prevTmp, { force: true });
  try {
    await link(paths.file, paths.prevTmp);
  } catch {
    // File systems without hard links (FAT, some shares): copy, and flush the copy.
    await copyFile(paths.file, paths.prevTmp);
    const handle = await open(paths.prevTmp, "r+");
    await handle.sync().finally(() => handle.close());
  }
  await rename(paths.prevTmp, paths.prev);
}

/**
 * Keeps an encrypted copy of a rejected journal tail beside the database, then cuts the journal
 * back to its last valid record so new records follow it. The copy is for diagnosis: it is never
 * replayed automatically, because nothing in it was acknowledged intact.
 */
async function setTailAside(paths: DatabasePaths, goodLength: number, reason: string) {
  const savedAs = `${paths.journal}.torn-${new Date().toISOString().replace(/[-:.]/g, "")}`;
  try {
    const bytes = (await readIfExists(paths.journal)) ?? new Uint8Array(0);
    await writeFileDurably(savedAs, [bytes.subarray(goodLength)]);
    await syncDirectory(paths.dir);
    const handle = await open(paths.journal, "r+");
    try {
      await handle.truncate(goodLength);
      await handle.sync();
    } finally {
      await handle.close();
    }
    return { bytes: bytes.length - goodLength, reason, savedAs };
  } catch (error) {
    throw fileError(error, paths.journal, "set aside the damaged tail of");
  }
}
