import { SYNCED_TABLES } from "@centrovision/core";
import type { SqlNode } from "@centrovision/testkit/nodes";
import type postgres from "postgres";
import { expect } from "vitest";

/**
 * A test-only stand-in for the sync engine: moves pages between two nodes through the SQL API
 * (cv_sync_pull on one, cv_sync_apply on the other, cv_sync_ack back), so protocol scenarios run
 * without the TypeScript engine.
 */

/**
 * A jsonb argument: sent as text and cast by the server (a string bound straight to a jsonb
 * parameter would be JSON-encoded a second time by postgres.js).
 */
export function json(sql: postgres.Sql | postgres.TransactionSql, value: unknown): postgres.Fragment {
  return sql`${JSON.stringify(value)}::text::jsonb`;
}

/** Every value whose text has a special form, and text from every Unicode plane. */
export const UNUSUAL_TEXT = [
  'comillas " dobles, \\ barra, (paréntesis), {llaves}, coma, punto y coma;',
  "línea\nnueva\ttab \\N NULL ''",
  "  espacios al borde  ",
  // One character of each of the 17 planes (assigned or not: the text must survive either way).
  Array.from({ length: 17 }, (_, plane) => String.fromCodePoint(plane * 0x10000 + 0x4e2d)).join(""),
  "😀 𠀀 𰀀 󠀁 󰀀 􀀀 ﷽ ñ Ω",
].join(" | ");

export interface Cursor {
  txid: number;
  seq: number;
}

export interface Change {
  table: string;
  row_id: string;
  op: "upsert" | "delete";
  row: Record<string, unknown>;
  version: string;
  base_version: string | null;
  origin: string;
  hlc: string;
  changed_columns: string[] | null;
  resolves: string | null;
  author?: Record<string, string> | null;
  txid: number;
  seq: number;
}

export interface Page {
  node_id: string;
  epoch: string;
  fingerprint: Record<string, string>;
  now: string;
  changes: Change[];
  cursor: Cursor;
  has_more: boolean;
}

export interface ApplyResult {
  status: "applied" | "duplicate";
  applied: number;
  skipped: number;
  conflicts: number;
  cursor: Cursor;
}

/** {node_id, node_name, epoch, fingerprint}: what cv_sync_apply takes as p_source. */
export async function identity(node: SqlNode): Promise<Record<string, unknown>> {
  const [found] = await node.sql<{ id: Record<string, unknown> }[]>`
    select cv_sync_node() - 'now' - 'max_txid' - 'open_conflicts' as id`;
  return found?.id ?? {};
}

/** The cursor `target` has stored for `source`. */
export async function storedCursor(target: SqlNode, source: SqlNode): Promise<Cursor> {
  const [found] = await target.sql<{ c: { cursor: Cursor } }[]>`select cv_sync_cursor(${source.id}) as c`;
  return found?.c.cursor ?? { txid: 0, seq: 0 };
}

/** A page's set of json values as the engine reads it: its header, then the items of its chunks in order. */
function unchunk(set: readonly { r: unknown }[], fn: string): [Record<string, unknown>, unknown[]] {
  const [header, ...chunks] = set.map((row) => row.r);
  if (!header) throw new Error(`${fn} returned nothing`);
  return [header as Record<string, unknown>, (chunks as unknown[][]).flat()];
}

/** A page as the engine hands it on: the set's header with the changes of its chunks. */
export async function pull(source: SqlNode, consumer: SqlNode, after: Cursor, limit = 1000): Promise<Page> {
  const [header, changes] = unchunk(
    await source.sql<{ r: unknown }[]>`
      select r from cv_sync_pull(${consumer.id}, ${json(source.sql, after)}, ${limit}) r`,
    "cv_sync_pull",
  );
  return { ...header, changes } as Page;
}

export async function apply(
  target: SqlNode,
  source: Record<string, unknown>,
  expected: Cursor,
  page: Pick<Page, "cursor" | "changes">,
): Promise<ApplyResult> {
  const [found] = await target.sql<{ result: ApplyResult }[]>`
    select cv_sync_apply(${json(target.sql, source)}, ${json(target.sql, expected)},
      ${json(target.sql, page.cursor)}, ${json(target.sql, page.changes)}) as result`;
  if (!found) throw new Error("cv_sync_apply returned nothing");
  return found.result;
}

/** One page from `from` to `to`, starting where `to` stands; acknowledged on `from`. */
export async function movePage(
  from: SqlNode,
  to: SqlNode,
  limit = 1000,
): Promise<{ page: Page; result: ApplyResult }> {
  const expected = await storedCursor(to, from);
  const page = await pull(from, to, expected, limit);
  const result = await apply(to, await identity(from), expected, page);
  await from.sql`select cv_sync_ack(${to.id}, ${json(from.sql, result.cursor)})`;
  return { page, result };
}

/**
 * Pages from `from` to `to` until nothing is left. A 23503 (a child whose parent is further on in
 * the log) is answered as the engine must: the same start with a page twice as large.
 */
export async function sync(
  from: SqlNode,
  to: SqlNode,
  limit = 1000,
): Promise<{ pages: number; applied: number }> {
  let pages = 0;
  let applied = 0;
  let size = limit;
  for (;;) {
    try {
      const { page, result } = await movePage(from, to, size);
      pages += 1;
      applied += result.applied;
      size = limit;
      if (!page.has_more) return { pages, applied };
    } catch (error) {
      if ((error as { code?: string }).code !== "23503" || size > 1_000_000) throw error;
      size *= 2;
    }
  }
}

/** Both directions until a round moves nothing (merges and restored rows flow back once). */
export async function syncBoth(a: SqlNode, b: SqlNode): Promise<void> {
  for (let round = 0; round < 5; round += 1) {
    const moved = (await sync(a, b)).applied + (await sync(b, a)).applied;
    if (moved === 0) return;
  }
  throw new Error("sync did not settle within 5 rounds");
}

/** md5 of every synced table's rows (to_jsonb, ordered by id). */
export async function digests(node: SqlNode): Promise<Record<string, string>> {
  const result: Record<string, string> = {};
  for (const table of SYNCED_TABLES) {
    const [found] = await node.sql<{ digest: string }[]>`
      select md5(coalesce(jsonb_agg(to_jsonb(t) order by t.id)::text, '')) as digest from ${node.sql(table)} t`;
    result[table] = found?.digest ?? "";
  }
  return result;
}

/** Both nodes hold exactly the same rows. */
export async function expectConverged(a: SqlNode, b: SqlNode): Promise<void> {
  expect(await digests(b)).toEqual(await digests(a));
}

export interface Conflict {
  id: string;
  table_name: string;
  row_id: string;
  local_row: Record<string, unknown> | null;
  remote_row: Record<string, unknown> | null;
  winner: "local" | "remote" | "merged";
  policy: string;
  reason: string;
  columns: string[] | null;
  status: "open" | "resolved";
}

/** Conflicts recorded on `node` (optionally only those of one row), oldest first. */
export async function conflicts(
  node: SqlNode,
  status: "open" | "resolved" | null = "open",
  rowId?: string,
): Promise<Conflict[]> {
  const [found] = await node.sql<
    { list: Conflict[] }[]
  >`select cv_sync_conflicts_list(${status}, 1000) as list`;
  return (found?.list ?? []).filter((c) => rowId === undefined || c.row_id === rowId);
}

export interface SnapshotProgress {
  table: string;
  after_id: string | null;
  done: boolean;
}

export interface SnapshotPage {
  table: string;
  after_id: string | null;
  rows: unknown[];
  last_id: string | null;
  has_more: boolean;
  cursor: Cursor;
}

/** Where `target`'s initial sync from `source` stands (null before the first page). */
export async function snapshotProgress(target: SqlNode, source: SqlNode): Promise<SnapshotProgress | null> {
  const [found] = await target.sql<{ c: { snapshot_progress: SnapshotProgress | null } }[]>`
    select cv_sync_cursor(${source.id}) as c`;
  return found?.c.snapshot_progress ?? null;
}

/** A page as the engine hands it on: the set's header with the rows of its chunks. */
export async function snapshotPage(source: SqlNode, table: string, after: string | null, limit: number) {
  const [header, rows] = unchunk(
    await source.sql<{ r: unknown }[]>`select r from cv_sync_snapshot(${table}, ${after}::uuid, ${limit}) r`,
    "cv_sync_snapshot",
  );
  return { ...header, rows } as SnapshotPage;
}

export async function applySnapshot(target: SqlNode, source: SqlNode, page: SnapshotPage) {
  const [found] = await target.sql<{ result: { status: string; progress: SnapshotProgress } }[]>`
    select cv_sync_apply_snapshot(${json(target.sql, await identity(source))}, ${json(target.sql, page)}) as result`;
  if (!found) throw new Error("cv_sync_apply_snapshot returned nothing");
  return found.result;
}

/**
 * An initial sync as the engine runs it: copy pages from where the target says it stands (so a
 * crash resumes), at most `maxPages` of them (to simulate one); `between` runs after each page.
 * Returns true when the copy is done.
 */
export async function copyTables(
  source: SqlNode,
  target: SqlNode,
  options: { limit: number; maxPages?: number; between?: () => Promise<void> },
): Promise<boolean> {
  for (let pages = 0; pages < (options.maxPages ?? Number.POSITIVE_INFINITY); pages += 1) {
    const at = await snapshotProgress(target, source);
    if (at?.done) return true;
    const page = await snapshotPage(
      source,
      at?.table ?? SYNCED_TABLES[0] ?? "",
      at?.after_id ?? null,
      options.limit,
    );
    await applySnapshot(target, source, page);
    await options.between?.();
  }
  return (await snapshotProgress(target, source))?.done ?? false;
}
