import {
  type CallOptions,
  CvError,
  isCvError,
  parseStoredRow,
  type RepositoryDriver,
  type TableName,
} from "@centrovision/core";
import { type Executor, execute } from "./execute.js";
import type { Generation } from "./pool.js";
import * as statements from "./statements.js";

type AnyRow = Record<string, unknown>;

/** Runs `work` for `table` on the live pool under the call's deadline; see guarded-call.ts. */
export type Run = <R>(
  label: string,
  table: TableName,
  options: CallOptions | undefined,
  work: (generation: Generation) => Promise<R>,
) => Promise<R>;

/** Tables whose rows were already checked on a pool generation. */
const verified = new WeakMap<Generation, Set<TableName>>();

/**
 * Checks rows against the table's zod schema once per table per pool: the first non-empty result
 * after each (re)connect. The type parsers already make every row canonical; this catches a
 * server whose schema differs from this version (a column dropped or retyped), which holds for
 * every row alike, and is checked again after every reconnect (e.g. to a restored server).
 * Checking every row cost 15–20 % of a `get` and tripled a 100-row page (bench/overhead.bench.ts),
 * so a value-level difference such as an enum label only the server knows passes unchecked here;
 * the sync engine's schema fingerprint reports that.
 */
function checked(generation: Generation, table: TableName, rows: AnyRow[]): AnyRow[] {
  const first = rows[0];
  const done = verified.get(generation) ?? new Set<TableName>();
  if (first === undefined || done.has(table)) return rows;
  try {
    parseStoredRow(table, first);
  } catch (error) {
    if (!isCvError(error)) throw error;
    const fields = error.issues.map((issue) => issue.path).join(", ");
    throw new CvError(
      "unknown",
      `[adapter-postgres] the clinic server's ${table} table does not match this version's schema (${fields}); run the migrations`,
      { table, issues: error.issues },
    );
  }
  done.add(table);
  verified.set(generation, done);
  return rows;
}

/** The clinic server as a core `RepositoryDriver`: each primitive is one statement (a batch of upserts one transaction). */
export function createPostgresDriver(run: Run): RepositoryDriver<Generation> {
  const found = async (executor: Executor, table: TableName, id: string) =>
    (await execute(executor, statements.exists(table, id))).length > 0;
  /** Zero rows changed: no row, or (with a version precondition) the row at another version. */
  const miss = async (generation: Generation, table: TableName, id: string, expected: string | undefined) =>
    expected !== undefined && (await found(generation.sql, table, id)) ? "stale" : "missing";

  return {
    name: "adapter-postgres",
    run: (call, work) => run(call.action, call.table, call.options, async (generation) => work(generation)),
    async get(generation, table, id) {
      const rows = await execute(generation.sql, statements.selectById(table, id));
      return rows.length === 0 ? null : (checked(generation, table, rows)[0] ?? null);
    },
    list: async (generation, table, query) =>
      checked(generation, table, await execute(generation.sql, statements.selectList(table, query))),
    insert: async (generation, table, values) =>
      checked(
        generation,
        table,
        await execute(generation.sql, statements.insert(table, values)),
      )[0] as AnyRow,
    async upsert(generation, table, rows) {
      const batches = statements.upsertBatches(rows);
      const write = async (executor: Executor) => {
        const written: AnyRow[] = [];
        for (const batch of batches) {
          const returned = checked(
            generation,
            table,
            await execute(executor, statements.upsert(table, batch)),
          );
          // RETURNING order is not guaranteed; ids are unique within a batch.
          const byId = new Map(returned.map((row) => [row.id, row]));
          for (const row of batch) written.push(byId.get(String(row.id)) as AnyRow);
        }
        return written;
      };
      // One statement is atomic by itself; several are one transaction.
      return batches.length === 1
        ? write(generation.sql)
        : (generation.sql.begin(write) as Promise<AnyRow[]>);
    },
    async update(generation, table, id, values, expected) {
      const updated = await execute(generation.sql, statements.update(table, id, values, expected));
      return updated.length > 0
        ? (checked(generation, table, updated)[0] as AnyRow)
        : miss(generation, table, id, expected);
    },
    async delete(generation, table, id, expected) {
      const deleted = await execute(generation.sql, statements.remove(table, id, expected));
      return deleted.length > 0 ? true : miss(generation, table, id, expected);
    },
  };
}
