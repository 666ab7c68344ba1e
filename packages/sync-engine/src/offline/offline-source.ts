import type { DataSource, Repository, TableName } from "@centrovision/core";
import type { OfflineStore, StoreBatch } from "./offline-store.js";
import { recordOfflineChanges } from "./outbox.js";

/**
 * The router's last tier: reads come from the local file (pending writes included, since they
 * are in its rows), and every write is recorded in the outbox in the same durable batch, so a
 * write the promise acknowledged is on disk with its outbox entry (fsync'd) or did not happen.
 */
export function createOfflineSource(store: OfflineStore, id: string, now: () => Date): DataSource {
  function write<R>(work: (batch: StoreBatch) => R, options: { timeoutMs?: number } | undefined) {
    return store.batch((batch) => {
      const result = work(batch);
      recordOfflineChanges(batch, now().toISOString());
      return result;
    }, options);
  }

  function repository<T extends TableName>(table: T): Repository<T> {
    const local = store.table(table);
    return {
      table,
      get: (rowId, o) => local.get(rowId, o),
      list: (query, o) => local.list(query, o),
      insert: (row, o) => write((b) => b.insert(table, row), o),
      upsert: (row, o) => write((b) => b.upsert(table, row, o?.expectedVersion), o),
      upsertMany: (rows, o) => write((b) => rows.map((row) => b.upsert(table, row)), o),
      update: (rowId, patch, o) => write((b) => b.update(table, rowId, patch, o?.expectedVersion), o),
      delete: (rowId, o) => write((b) => b.delete(table, rowId, o?.expectedVersion), o),
    };
  }

  return {
    id,
    kind: store.kind,
    capabilities: store.capabilities,
    probe: (o) => store.probe(o),
    table: repository,
    close: () => store.close(),
  };
}
