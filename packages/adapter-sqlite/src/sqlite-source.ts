import {
  type CallOptions,
  type Capabilities,
  CvError,
  type DataSource,
  isCvError,
  type ListQuery,
  parseId,
  parseListQuery,
  parseNewRow,
  parseRowPatch,
  type Repository,
  type TableName,
  withDeadline,
} from "@centrovision/core";
import { importKey } from "./internal/cipher.js";
import { DurableStore, type RecoveryReport } from "./internal/durable-store.js";
import { listSql } from "./internal/list-sql.js";
import { deleteRow, insertRow, updateRow, upsertRow } from "./internal/row-operations.js";
import { type StoredRow, selectRowSql, toRow } from "./internal/row-sql.js";
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
  /** The records of `collection`, in first-written order (see {@link SqliteBatch.setRecord}). */
  records<V = unknown>(collection: string, options?: CallOptions): Promise<SqliteRecord<V>[]>;
}

type Values = Record<string, unknown>;

/** Omitted and `undefined` mean the same: the column keeps its current or default value. */
const defined = (values: object): Values =>
  Object.fromEntries(Object.entries(values).filter(([, value]) => value !== undefined));

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

  function repository<T extends TableName>(table: T): Repository<T> {
    const label = (op: string) => `${table}.${op}`;
    return {
      table,
      get: (id, o) =>
        call(label("get"), o, async () => {
          const rowId = parseId(id, table);
          return read(label("get"), table, () => {
            const image = sql.objects(selectRowSql(table), [rowId])[0] as StoredRow | undefined;
            return image ? toRow(table, image) : null;
          });
        }),
      list: (query, o) =>
        call(label("list"), o, async () => {
          const { text, params } = listSql(table, parseListQuery(table, query) as ListQuery<Values>);
          return read(label("list"), table, () =>
            sql.objectsOnce(text, params).map((image) => toRow(table, image as StoredRow)),
          );
        }),
      insert: (row, o) =>
        call(label("insert"), o, async (signal) => {
          const values = defined(parseNewRow(table, row));
          return write(label("insert"), table, signal, (s) => insertRow(s, table, values));
        }),
      upsert: (row, o) =>
        call(label("upsert"), o, async (signal) => {
          const values = defined(parseNewRow(table, row));
          return write(label("upsert"), table, signal, (s) =>
            upsertRow(s, table, values, o?.expectedVersion),
          );
        }),
      upsertMany: (rows, o) =>
        call(label("upsertMany"), o, async (signal) => {
          const batch = rows.map((row) => defined(parseNewRow(table, row)));
          return write(label("upsertMany"), table, signal, (s) =>
            batch.map((values) => upsertRow(s, table, values)),
          );
        }),
      update: (id, patch, o) =>
        call(label("update"), o, async (signal) => {
          const rowId = parseId(id, table);
          const values = defined(parseRowPatch(table, patch));
          return write(label("update"), table, signal, (s) =>
            updateRow(s, table, rowId, values, o?.expectedVersion),
          );
        }),
      delete: (id, o) =>
        call(label("delete"), o, async (signal) => {
          const rowId = parseId(id, table);
          return write(label("delete"), table, signal, (s) => deleteRow(s, table, rowId, o?.expectedVersion));
        }),
    };
  }

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
    table: repository,
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
