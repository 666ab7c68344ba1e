import { type CallOptions, CvError, type RepositoryDriver, type TableName } from "@centrovision/core";
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
 * The cloud as a core `RepositoryDriver`: each primitive is one PostgREST request (one
 * transaction), except that a list longer than a page reads several pages, and an update or
 * delete that matched nothing asks once more whether the row exists, to tell a missing row from a
 * stale version.
 */
export function createSupabaseDriver(run: Run, pageSize: number): RepositoryDriver<Send> {
  const get = (send: Send, table: TableName, id: string) =>
    send((q) => q.select(selectList(table)).eq("id", id), "maybeSingle");
  const withVersion = <B extends FilterBuilderLike>(builder: B, expected: string | undefined): B =>
    expected === undefined ? builder : builder.eq("version", expected);
  /** Zero rows changed: absent (or hidden by RLS), or present at another version. */
  const miss = async (send: Send, table: TableName, id: string, expected: string | undefined) =>
    expected !== undefined && (await get(send, table, id)) !== null ? "stale" : "missing";

  return {
    name: "adapter-supabase",
    run: (call, work) => run(call.action, call.table, call.options, async (send) => work(send)),
    async get(send, table, id) {
      const data = await get(send, table, id);
      return data === null ? null : storedRow(table, data);
    },
    async list(send, table, query) {
      const plan = planPages(query, pageSize);
      const rows: AnyRow[] = [];
      let last: number | undefined;
      for (let range = plan.next(0, last); range !== undefined; range = plan.next(rows.length, last)) {
        const [from, to] = range;
        const page = storedRows(
          table,
          await send((q) => applyFiltersAndOrder(q.select(selectList(table)), query).range(from, to)),
        );
        for (const row of page) rows.push(row);
        last = page.length;
      }
      return rows;
    },
    insert: async (send, table, values) =>
      storedRow(table, await send((q) => q.insert(values).select(selectList(table)), "single")),
    async upsert(send, table, rows) {
      const batch = oneRequestBatch(table, rows);
      const written = storedRows(
        table,
        await send((q) => q.upsert(batch, { onConflict: "id" }).select(selectList(table))),
      );
      const byId = new Map(written.map((row) => [row.id, row]));
      return rows.map((row) => {
        const stored = byId.get(String(row.id));
        if (stored === undefined) {
          throw new CvError(
            "unknown",
            `[adapter-supabase] the cloud did not return every upserted ${table} row`,
            {
              table,
            },
          );
        }
        return stored;
      });
    },
    async update(send, table, id, values, expected) {
      const [first] = storedRows(
        table,
        await send((q) => withVersion(q.update(values).eq("id", id), expected).select(selectList(table))),
      );
      return first ?? miss(send, table, id, expected);
    },
    async delete(send, table, id, expected) {
      const deleted = await send((q) => withVersion(q.delete().eq("id", id), expected).select("id"));
      return Array.isArray(deleted) && deleted.length > 0 ? true : miss(send, table, id, expected);
    },
  };
}
