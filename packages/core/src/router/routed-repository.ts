import { randomUUID } from "node:crypto";
import type { CallOptions } from "../deadline.js";
import { isCvError, isTierDown } from "../errors.js";
import type { Repository, WriteOptions } from "../repository.js";
import type { NewRow, Row, TableName } from "../tables/index.js";
import { parseNewRow, parseRowPatch } from "../validate.js";
import type { Attempt, RouterCallContext } from "./router-call.js";

type AnyRow = Record<string, unknown>;

/**
 * Gives every write a version chosen here, before it is sent. A write retried
 * on another tier then carries the same version, so when the tiers sync the
 * two copies are recognised as one change (same version = no-op) instead of a
 * duplicate or a conflict; and finding that version on a tier proves the write
 * landed there.
 */
function withVersion<R extends object>(row: R): R {
  return (row as AnyRow).version === undefined ? { ...row, version: randomUUID() } : row;
}

function keyOf(row: unknown): { id: string; version: string | null } {
  const record = (row ?? {}) as AnyRow;
  return { id: String(record.id), version: typeof record.version === "string" ? record.version : null };
}

/** A repository whose every call goes through the router's tier choice and retries. */
export function createRoutedRepository<T extends TableName>(
  table: T,
  router: RouterCallContext,
): Repository<T> {
  const onWriteFailure =
    (at: Attempt, rows: readonly unknown[], op: "upsert" | "delete") => (error: unknown) => {
      if (isTierDown(error))
        router.recordUnknown(
          at,
          rows.map((row) => ({ table, op, ...keyOf(row) })),
        );
      throw error;
    };
  const remember = (at: Attempt, rows: readonly unknown[]) =>
    router.recordWrite(
      at,
      rows.map((row) => ({ table, op: "upsert" as const, id: keyOf(row).id, row: row as AnyRow })),
    );

  return {
    table,
    get: (id, options) => router.run("read", `${table}.get`, options, (s, o) => s.table(table).get(id, o)),
    list: (query, options) =>
      router.run("read", `${table}.list`, options, (s, o) => s.table(table).list(query, o)),
    async insert(row: NewRow<T>, options?: CallOptions) {
      // Validated here, before a version is added, so an empty or bad input is not dressed up as valid.
      const versioned = withVersion(parseNewRow(table, row));
      return router.run("write", `${table}.insert`, options, async (s, o, at) => {
        const written = await s
          .table(table)
          .insert(versioned, o)
          .catch(async (error: unknown) => {
            // A retry finding the row with our version: the earlier attempt landed and has synced here.
            if (at.attempt > 0 && isCvError(error, "constraint")) {
              const existing = await s.table(table).get(keyOf(versioned).id, o);
              if (existing && (existing as AnyRow).version === keyOf(versioned).version) return existing;
            }
            throw error;
          })
          .catch(onWriteFailure(at, [versioned], "upsert"));
        remember(at, [written]);
        return written;
      });
    },
    async upsert(row: NewRow<T>, options?: WriteOptions) {
      const versioned = withVersion(parseNewRow(table, row));
      return router.run("write", `${table}.upsert`, options, async (s, o, at) => {
        const written = await s
          .table(table)
          .upsert(versioned, {
            ...o,
            ...(options?.expectedVersion && { expectedVersion: options.expectedVersion }),
          })
          .catch(onWriteFailure(at, [versioned], "upsert"));
        remember(at, [written]);
        return written;
      });
    },
    async upsertMany(rows: readonly NewRow<T>[], options?: CallOptions) {
      const versioned = rows.map((row) => withVersion(parseNewRow(table, row)));
      return router.run("write", `${table}.upsertMany`, options, async (s, o, at) => {
        const written = await s
          .table(table)
          .upsertMany(versioned, o)
          .catch(onWriteFailure(at, versioned, "upsert"));
        remember(at, written);
        return written;
      });
    },
    async update(id, patch, options) {
      const versioned = withVersion(parseRowPatch(table, patch));
      return router.run("write", `${table}.update`, options, async (s, o, at) => {
        const written = await s
          .table(table)
          .update(id, versioned, {
            ...o,
            ...(options?.expectedVersion && { expectedVersion: options.expectedVersion }),
          })
          .catch(onWriteFailure(at, [{ id, version: (versioned as AnyRow)?.version }], "upsert"));
        remember(at, [written]);
        return written as Row<T>;
      });
    },
    delete(id, options) {
      return router.run("write", `${table}.delete`, options, async (s, o, at) => {
        const deleted = await s
          .table(table)
          .delete(id, { ...o, ...(options?.expectedVersion && { expectedVersion: options.expectedVersion }) })
          .catch(onWriteFailure(at, [{ id }], "delete"));
        const base = options?.expectedVersion;
        router.recordWrite(at, [{ table, op: "delete", id, row: null, ...(base && { baseVersion: base }) }]);
        return deleted;
      });
    },
  };
}
