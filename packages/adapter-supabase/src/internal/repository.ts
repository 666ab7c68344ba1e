import {
  type CallOptions,
  CvError,
  type ListQuery,
  parseId,
  parseListQuery,
  parseNewRow,
  parseRowPatch,
  type Repository,
  type Row,
  type TableName,
  type WriteOptions,
} from "@centrovision/core";
import type { FilterBuilderLike, QueryBuilderLike } from "./client.js";
import { applyFiltersAndOrder, planPages } from "./list-query.js";
import { selectList, storedRow, storedRows } from "./rows.js";

type AnyRow = Record<string, unknown>;

/**
 * Sends one request on the call's table, with the call's abort signal and retries off, and
 * resolves with PostgREST's `data` or rejects with a `CvError`. `shape` asks for one object:
 * `single` (exactly one row, else an error) or `maybeSingle` (`null` for none).
 */
export type Send = (
  build: (query: QueryBuilderLike) => FilterBuilderLike,
  shape?: "single" | "maybeSingle",
) => Promise<unknown>;

/** Runs `work` for `table` under the call's deadline; see supabase-source.ts. */
export type Run = <R>(
  label: string,
  table: TableName,
  options: CallOptions | undefined,
  work: (send: Send) => Promise<R>,
) => Promise<R>;

/** Omitted and `undefined` mean the same: the column keeps its current or default value. */
const defined = (values: object): AnyRow =>
  Object.fromEntries(Object.entries(values).filter(([, value]) => value !== undefined));

const versionConflict = (table: TableName) =>
  new CvError("conflict", `[adapter-supabase] ${table} row changed since it was read (version mismatch)`, {
    table,
  });

const notFound = (table: TableName) =>
  new CvError("not_found", `[adapter-supabase] no ${table} row with this id`, { table });

/**
 * Prepares an `upsertMany` batch for ONE request (PostgREST runs it in one transaction: all or
 * nothing). Rows of the same id merge into the first one's place — PostgreSQL refuses to touch a
 * row twice in one `ON CONFLICT` statement, and applying them in order leaves the merged values.
 * Rows must carry the same columns: PostgREST's bulk upsert writes every listed column of every
 * row, so a column one row omits would be overwritten with NULL/default instead of kept.
 */
function oneRequestBatch(table: TableName, rows: readonly AnyRow[]): AnyRow[] {
  const byId = new Map<unknown, AnyRow>();
  for (const row of rows) byId.set(row.id, { ...byId.get(row.id), ...row });
  const batch = [...byId.values()];
  const signature = (row: AnyRow) => Object.keys(row).sort().join(",");
  const first = signature(batch[0] ?? {});
  const odd = batch.findIndex((row) => signature(row) !== first);
  if (odd >= 0) {
    throw new CvError(
      "invalid_input",
      `[adapter-supabase] upsertMany rows must all carry the same ${table} columns in this source ` +
        "(one request, one transaction); pass null to clear a column, or split the batch",
      { table, issues: [{ path: `rows.${odd}`, message: "carries different columns than rows.0" }] },
    );
  }
  return batch;
}

/**
 * A repository over one table; every method is one PostgREST request (one transaction), except
 * that a list longer than a page reads several pages, and an update or delete that matched nothing
 * asks once more whether the row exists, to tell `not_found` from `conflict`.
 */
export function createRepository<T extends TableName>(table: T, run: Run, pageSize: number): Repository<T> {
  const columns = selectList(table);
  const get = (send: Send, id: string) => send((q) => q.select(columns).eq("id", id), "maybeSingle");
  const withVersion = <B extends FilterBuilderLike>(builder: B, expected: string | undefined): B =>
    expected === undefined ? builder : builder.eq("version", expected);

  return {
    table,
    get: (id, options) =>
      run(`${table}.get`, table, options, async (send) => {
        const data = await get(send, parseId(id, table));
        return data === null ? null : storedRow(table, data);
      }),
    list: (query, options) =>
      run(`${table}.list`, table, options, async (send) => {
        const parsed = parseListQuery(table, query) as ListQuery<AnyRow>;
        const plan = planPages(parsed, pageSize);
        const rows: Row<T>[] = [];
        let last: number | undefined;
        for (let range = plan.next(0, last); range !== undefined; range = plan.next(rows.length, last)) {
          const [from, to] = range;
          const page = storedRows(
            table,
            await send((q) => applyFiltersAndOrder(q.select(columns), parsed).range(from, to)),
          );
          for (const row of page) rows.push(row);
          last = page.length;
        }
        return rows;
      }),
    insert: (row, options) =>
      run(`${table}.insert`, table, options, async (send) => {
        const values = defined(parseNewRow(table, row));
        return storedRow(table, await send((q) => q.insert(values).select(columns), "single"));
      }),
    upsert: (row, options?: WriteOptions) =>
      run(`${table}.upsert`, table, options, async (send) => {
        const values = defined(parseNewRow(table, row));
        const expected = options?.expectedVersion;
        if (expected === undefined) {
          return storedRow(
            table,
            await send((q) => q.upsert(values, { onConflict: "id" }).select(columns), "single"),
          );
        }
        // PostgREST has no conditional upsert. A version precondition needs the row to exist, as
        // in every other source: a PATCH guarded by id + version is atomic, and zero rows (stale or
        // absent) is a conflict, so a row deleted meanwhile is never silently re-created.
        const { id, ...changes } = values;
        const updated = storedRows(
          table,
          await send((q) => withVersion(q.update(changes).eq("id", String(id)), expected).select(columns)),
        );
        const [first] = updated;
        if (first === undefined) throw versionConflict(table);
        return first;
      }),
    upsertMany: (rows, options) =>
      run(`${table}.upsertMany`, table, options, async (send) => {
        const values = rows.map((row) => defined(parseNewRow(table, row)));
        if (values.length === 0) return [];
        const batch = oneRequestBatch(table, values);
        const written = storedRows(
          table,
          await send((q) => q.upsert(batch, { onConflict: "id" }).select(columns)),
        );
        const byId = new Map(written.map((row) => [row.id, row]));
        return values.map((row) => {
          const stored = byId.get(String(row.id));
          if (stored === undefined) {
            throw new CvError(
              "unknown",
              `[adapter-supabase] the cloud did not return every upserted ${table} row`,
              { table },
            );
          }
          return stored;
        });
      }),
    update: (id, patch, options?: WriteOptions) =>
      run(`${table}.update`, table, options, async (send) => {
        const key = parseId(id, table);
        const values = defined(parseRowPatch(table, patch));
        const expected = options?.expectedVersion;
        const updated = storedRows(
          table,
          await send((q) => withVersion(q.update(values).eq("id", key), expected).select(columns)),
        );
        const [first] = updated;
        if (first !== undefined) return first;
        // Zero rows: absent (or hidden by RLS), or present at another version.
        if (expected !== undefined && (await get(send, key)) !== null) throw versionConflict(table);
        throw notFound(table);
      }),
    delete: (id, options?: WriteOptions) =>
      run(`${table}.delete`, table, options, async (send) => {
        const key = parseId(id, table);
        const expected = options?.expectedVersion;
        const deleted = await send((q) => withVersion(q.delete().eq("id", key), expected).select("id"));
        if (Array.isArray(deleted) && deleted.length > 0) return true;
        if (expected !== undefined && (await get(send, key)) !== null) throw versionConflict(table);
        return false;
      }),
  };
}
