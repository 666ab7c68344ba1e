import type { SqliteBatch, SqliteSource } from "@centrovision/adapter-sqlite";

/**
 * The slice of the PC's `SqliteSource` the offline tier uses: a `DataSource` plus atomic,
 * durable batches and side records. Type-only: the sync engine does not load the adapter.
 */
export type OfflineStore = Pick<
  SqliteSource,
  "id" | "kind" | "capabilities" | "probe" | "table" | "tablesWith" | "close" | "batch" | "records"
>;

/** One atomic, durable write call on the store. */
export type StoreBatch = SqliteBatch;
