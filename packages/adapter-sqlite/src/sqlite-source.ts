import {
  type CallOptions,
  type Capabilities,
  CvError,
  type DataSource,
  type DriverCall,
  isCvError,
  type Repository,
  type RepositoryDriver,
  repositoriesOf,
  type TableName,
  withDeadline,
} from "@centrovision/core";
import { importKey } from "./internal/cipher.js";
import { DurableStore, type RecoveryReport } from "./internal/durable-store.js";
import { listSql } from "./internal/list-sql.js";
import { deleteRow, insertRow, updateRow, upsertRow } from "./internal/row-operations.js";
import { type StoredRow, toRow } from "./internal/row-sql.js";
import { WriteGate } from "./internal/write-gate.js";
import { WriteSession } from "./internal/write-session.js";
import { createBatch, readRecords, type SqliteBatch, type SqliteRecord } from "./sqlite-batch.js";
import { parseSqliteConfig, type SqliteSourceConfig } from "./sqlite-config.js";
import { translateSqliteError } from "./sqlite-errors.js";

export type { RecoveryReport } from "./internal/durable-store.js";

/** What this source guarantees; read by the router and asserted by the contract suite. */
export const SQLITE_CAPABILITIES: Capabilities = Object.freeze({
  transactions: true,
  changeFeed: false,
  durable: true,
  rowLevelSecurity: false,
});

/** A SQLite source plus what a desktop app and tools need about its file. */
export interface SqliteSource extends DataSource {
  /** Absolute path of the snapshot file; the journal is `<path>-journal`. */
  readonly path: string;
  /** What opening found: records replayed, and any torn journal tail set aside. */
  readonly recovery: RecoveryReport;
  /**
   * Folds the journal into a new snapshot now (normally automatic past `snapshotAfterBytes`
   * and on close). Resolves once the new snapshot and empty journal are durable; writes queue
   * behind it meanwhile.
   */
  snapshot(options?: CallOptions): Promise<void>;
  /**
   * Runs `work` as one write call: one transaction and one fsync'd journal record holding every
   * row and record it changed. Resolves with its result once all of it is durable; if `work`
   * throws, nothing it did happened. `work` must be synchronous: no other call runs meanwhile.
   */
  batch<R>(work: (batch: SqliteBatch) => R, options?: CallOptions): Promise<R>;
  /**
   * `table()` whose every write also runs `afterWrite` in its transaction and journal record (e.g.
   * to note the change in an outbox): both are durable when the write resolves, or neither
   * happened. `afterWrite` must be synchronous.
   */
  tablesWith(afterWrite: (batch: SqliteBatch) => void): <T extends TableName>(name: T) => Repository<T>;
  /** The records of `collection`, in first-written order (see {@link SqliteBatch.setRecord}). */
  records<V = unknown>(collection: string, options?: CallOptions): Promise<SqliteRecord<V>[]>;
}

/**
 * Opens (creating if needed) the encrypted database file at `config.path` and returns a source
 * over it. Writes are serialised and each resolves only after its journal record is fsync'd, so
 * an acknowledged write survives kill -9 or a power cut; reads come from memory.
 *
 * @throws CvError `invalid_config` for a bad config, `unauthorized` for a wrong key,
 *   `unavailable` when the file is damaged, locked by another process or unreachable.
 */
export async function createSqliteSource(config: SqliteSourceConfig): Promise<SqliteSource> {
  const { id, timeoutMs, path, snapshotAfterBytes, key: rawKey } = parseSqliteConfig(config);
  // Only the non-extractable CryptoKey is kept; nothing below holds the caller's key bytes.
  const key = await importKey(rawKey);
  const store = await DurableStore.open(path, key, snapshotAfterBytes);
  const { sql } = store;
  const gate = new WriteGate();
  let closing: Promise<void> | undefined;
  let snapshotQueued = false;

  function call<R>(
    label: string,
    callOptions: CallOptions | undefined,
    work: (signal: AbortSignal) => Promise<R>,
  ) {
    if (closing) {
      return Promise.reject(new CvError("unavailable", `[adapter-sqlite] source ${id} is closed`));
    }
    return withDeadline(`[adapter-sqlite] ${label}`, callOptions, timeoutMs, work);
  }

  async function read<R>(label: string, table: TableName | undefined, work: () => R): Promise<R> {
    await gate.readable();
    try {
      return work();
    } catch (error) {
      throw translateSqliteError(error, { action: label, ...(table && { table }) });
    }
  }

  /** SQLite may already have rolled back on its own (e.g. out of memory); that is not a new failure. */
  function rollback(): void {
    try {
      sql.exec("ROLLBACK");
    } catch {
      // No transaction left to roll back.
    }
  }

  function queueSnapshot(): void {
    if (snapshotQueued || !store.wantsSnapshot) return;
    snapshotQueued = true;
    // Not awaited by the write that crossed the threshold; a failure is retried later
    // (the store pushes its threshold back) and surfaces through probe() if the disk is gone.
    gate
      .exclusive(() => store.snapshot())
      .catch(() => {})
      .finally(() => {
        snapshotQueued = false;
      });
  }

  /**
   * One write call: one transaction, one journal record, acknowledged after fsync. A call whose
   * deadline passed while it queued is dropped before it starts, so a caller told `timeout`
   * is never surprised by a write that happened much later.
   */
  function write<R>(
    label: string,
    table: TableName | undefined,
    signal: AbortSignal,
    body: (s: WriteSession) => R,
  ): Promise<R> {
    return gate.exclusive(async () => {
      if (signal.aborted) throw signal.reason;
      if (store.broken) throw store.broken;
      const result = await gate.transaction(async () => {
        const session = new WriteSession(sql);
        sql.exec("BEGIN");
        let value: R;
        try {
          value = body(session);
          if (session.ops.length > 0) await store.commit(session.ops);
        } catch (error) {
          rollback();
          throw translateSqliteError(error, { action: label, ...(table && { table }) });
        }
        try {
          sql.exec("COMMIT");
        } catch (error) {
          rollback();
          // The record is durable but memory did not take it: they must not drift apart.
          const failure = translateSqliteError(error, { action: label, ...(table && { table }) });
          store.poison(
            new CvError(
              "unavailable",
              `[adapter-sqlite] ${label}: commit failed after the journal write; reopen the source`,
              { cause: failure },
            ),
          );
          throw failure;
        }
        return value;
      });
      queueSnapshot();
      return result;
    });
  }

  /**
   * Reads run on the database as it is; writes inside one transaction and journal record
   * (`write`). Either way the work gets a session: a read's never changes anything.
   */
  const driverWith = (afterWrite?: (batch: SqliteBatch) => void): RepositoryDriver<WriteSession> => ({
    name: "adapter-sqlite",
    run: <R>(c: DriverCall, work: (s: WriteSession) => R | Promise<R>) =>
      call(c.action, c.options, (signal) =>
        c.mode === "write"
          ? write(c.action, c.table, signal, (s) => {
              // This driver's primitives answer synchronously: the transaction is synchronous.
              const result = work(s) as R;
              afterWrite?.(createBatch(s));
              return result;
            })
          : read(c.action, c.table, () => work(new WriteSession(sql)) as R),
      ),
    get: (s, table, id) => {
      const image = s.read(table, id);
      return image === null ? null : toRow(table, image);
    },
    list: (s, table, query) => {
      const { text, params } = listSql(table, query);
      return s.sql.objectsOnce(text, params).map((image) => toRow(table, image as StoredRow));
    },
    insert: insertRow,
    upsert: (s, table, rows) => rows.map((values) => upsertRow(s, table, values)),
    update: updateRow,
    delete: deleteRow,
  });

  return {
    id,
    kind: "sqlite",
    capabilities: SQLITE_CAPABILITIES,
    path: store.paths.file,
    recovery: store.recovery,
    probe: (o) =>
      call("probe", o, async () => {
        const started = performance.now();
        await read("probe", undefined, () => sql.scalar("SELECT count(*) FROM cv_session"));
        await store.check();
        return { latencyMs: performance.now() - started };
      }),
    snapshot: (o) =>
      call("snapshot", o, async (signal) =>
        gate.exclusive(async () => {
          if (signal.aborted) throw signal.reason;
          await store.snapshot();
        }),
      ),
    table: repositoriesOf(driverWith()),
    tablesWith: (afterWrite) => repositoriesOf(driverWith(afterWrite)),
    batch: (work, o) =>
      call("batch", o, async (signal) => write("batch", undefined, signal, (s) => work(createBatch(s)))),
    records: (collection, o) =>
      call("records", o, async () => read("records", undefined, () => readRecords(store, collection))),
    close() {
      closing ??= gate
        .exclusive(() => store.close())
        .catch((error: unknown) => {
          throw isCvError(error) ? error : translateSqliteError(error, { action: "close" });
        });
      return closing;
    },
  };
}
