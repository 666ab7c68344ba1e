import {
  type CallOptions,
  CvError,
  isCvError,
  type ListQuery,
  parseId,
  parseListQuery,
  parseNewRow,
  parseRowPatch,
  parseStoredRow,
  type Repository,
  type Row,
  type TableName,
  type WriteOptions,
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

/** Omitted and `undefined` mean the same: the column keeps its current or default value. */
const defined = (values: object): AnyRow =>
  Object.fromEntries(Object.entries(values).filter(([, value]) => value !== undefined));

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
function checked<T extends TableName>(generation: Generation, table: T, rows: readonly AnyRow[]): Row<T>[] {
  const first = rows[0];
  const done = verified.get(generation) ?? new Set<TableName>();
  if (first === undefined || done.has(table)) return rows as Row<T>[];
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
  return rows as Row<T>[];
}

const versionConflict = (table: TableName) =>
  new CvError("conflict", `[adapter-postgres] ${table} row changed since it was read (version mismatch)`, {
    table,
  });

/** A repository over one table; every method is one atomic statement (upsertMany one transaction). */
export function createRepository<T extends TableName>(table: T, run: Run): Repository<T> {
  const one = (generation: Generation, rows: readonly AnyRow[]): Row<T> =>
    checked(generation, table, rows)[0] as Row<T>;
  const found = async (executor: Executor, id: string) =>
    (await execute(executor, statements.exists(table, id))).length > 0;

  async function upsertOne(
    generation: Generation,
    row: AnyRow,
    expectedVersion: string | undefined,
  ): Promise<Row<T>> {
    if (expectedVersion === undefined)
      return one(generation, await execute(generation.sql, statements.upsert(table, [row])));
    // A version precondition needs the row to exist (as in the memory source): an insert would
    // create what the caller believed was there at that version.
    const { id, ...values } = row;
    const updated = await execute(
      generation.sql,
      statements.update(table, String(id), values, expectedVersion),
    );
    if (updated.length === 0) throw versionConflict(table);
    return one(generation, updated);
  }

  return {
    table,
    get: (id, options) =>
      run(`${table}.get`, table, options, async (generation) => {
        const rows = await execute(generation.sql, statements.selectById(table, parseId(id, table)));
        return rows.length === 0 ? null : one(generation, rows);
      }),
    list: (query, options) =>
      run(`${table}.list`, table, options, async (generation) => {
        const parsed = parseListQuery(table, query) as ListQuery<AnyRow>;
        return checked(
          generation,
          table,
          await execute(generation.sql, statements.selectList(table, parsed)),
        );
      }),
    insert: (row, options) =>
      run(`${table}.insert`, table, options, async (generation) => {
        const values = defined(parseNewRow(table, row));
        return one(generation, await execute(generation.sql, statements.insert(table, values)));
      }),
    upsert: (row, options?: WriteOptions) =>
      run(`${table}.upsert`, table, options, (generation) =>
        upsertOne(generation, defined(parseNewRow(table, row)), options?.expectedVersion),
      ),
    upsertMany: (rows, options) =>
      run(`${table}.upsertMany`, table, options, async (generation) => {
        // Validate everything before the transaction opens: an invalid row costs no round trip.
        const values = rows.map((row) => defined(parseNewRow(table, row)));
        if (values.length === 0) return [];
        return generation.sql.begin(async (tx) => {
          const written: Row<T>[] = [];
          for (const batch of statements.upsertBatches(values)) {
            const returned = checked(generation, table, await execute(tx, statements.upsert(table, batch)));
            // RETURNING order is not guaranteed; ids are unique within a batch.
            const byId = new Map(returned.map((row) => [row.id, row]));
            for (const row of batch) written.push(byId.get(String(row.id)) as Row<T>);
          }
          return written;
        }) as Promise<Row<T>[]>;
      }),
    update: (id, patch, options?: WriteOptions) =>
      run(`${table}.update`, table, options, async (generation) => {
        const key = parseId(id, table);
        const values = defined(parseRowPatch(table, patch));
        const expected = options?.expectedVersion;
        const updated = await execute(generation.sql, statements.update(table, key, values, expected));
        if (updated.length > 0) return one(generation, updated);
        if (expected !== undefined && (await found(generation.sql, key))) throw versionConflict(table);
        throw new CvError("not_found", `[adapter-postgres] no ${table} row with this id`, { table });
      }),
    delete: (id, options?: WriteOptions) =>
      run(`${table}.delete`, table, options, async (generation) => {
        const key = parseId(id, table);
        const expected = options?.expectedVersion;
        const deleted = await execute(generation.sql, statements.remove(table, key, expected));
        if (deleted.length > 0) return true;
        if (expected !== undefined && (await found(generation.sql, key))) throw versionConflict(table);
        return false;
      }),
  };
}
