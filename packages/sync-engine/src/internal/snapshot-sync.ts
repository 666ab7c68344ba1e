import { SYNCED_TABLES, type TableName } from "@centrovision/core";
import { isSyncError } from "../sync-errors.js";
import type { SyncPeer } from "../sync-peer.js";
import type { SyncDirection, SyncProgress } from "../sync-status.js";
import type { NodeInfo, SnapshotPage, SnapshotProgress } from "../sync-types.js";
import type { PageSizer } from "./page-sizer.js";

export interface SnapshotSyncContext {
  readonly direction: SyncDirection;
  readonly source: SyncPeer;
  readonly target: SyncPeer;
  readonly sourceInfo: NodeInfo;
  /** How many rows the next page asks for, learnt from how long pages take. */
  readonly pages: PageSizer;
  readonly now: () => number;
  readonly isStopping: () => boolean;
  readonly onProgress: (progress: SyncProgress) => void;
}

function tableAfter(table: TableName): TableName | undefined {
  return SYNCED_TABLES[SYNCED_TABLES.indexOf(table) + 1];
}

/**
 * Copies every synced table from the source in foreign-key order, in id-ordered pages, from where
 * the target says the copy stands (`from`; null = the beginning). Each page is written together
 * with the copy's progress in one transaction on the target, so a crash resumes at the next page
 * and never writes half a page. The next page is read while the current one is written: at most
 * two pages are held, whatever the table sizes. Resolves true when the copy is complete, false
 * when it stopped early because `isStopping()`.
 */
export async function copySnapshot(
  ctx: SnapshotSyncContext,
  from: SnapshotProgress | null,
): Promise<boolean> {
  const first = SYNCED_TABLES[0] as TableName;
  const read = (table: TableName, afterId: string | null) => {
    const limit = ctx.pages.size;
    const started = ctx.now();
    // A slow read shrinks the next page; only the write, the heavier half, lets pages grow.
    const page = ctx.source.snapshot({ table, afterId, limit }).then((page) => {
      ctx.pages.record(ctx.now() - started, false);
      return { page, limit };
    });
    page.catch(() => {});
    return page;
  };
  let at = { table: from?.table ?? first, afterId: from?.afterId ?? null };
  /** After a call the node cancelled (statement_timeout): read a smaller page from where the copy stands. */
  const retrySmaller = (error: unknown) => {
    if (!isSyncError(error, "statement_timeout") || ctx.pages.shrink() === undefined) throw error;
    return read(at.table, at.afterId);
  };
  let next: ReturnType<typeof read> | undefined = read(at.table, at.afterId);
  let rowsDone = 0;
  while (next) {
    let page: SnapshotPage;
    let limit: number;
    try {
      ({ page, limit } = await next);
    } catch (error) {
      next = retrySmaller(error);
      continue;
    }
    next = undefined;
    const following = page.hasMore ? page.table : tableAfter(page.table);
    if (following !== undefined && !ctx.isStopping()) {
      next = read(following, page.hasMore ? page.lastId : null);
    }
    ctx.onProgress(progress(ctx, "pulled", page, rowsDone));
    const started = ctx.now();
    let done: boolean;
    try {
      const result = await ctx.target.applySnapshot(
        { ...page.source, nodeName: ctx.sourceInfo.nodeName },
        page,
      );
      ctx.pages.record(ctx.now() - started, page.rows.length >= limit);
      done = result.progress.done;
    } catch (error) {
      next = retrySmaller(error);
      continue;
    }
    rowsDone += page.rows.length;
    ctx.onProgress(progress(ctx, "applied", page, rowsDone));
    if (done) return true;
    at = { table: following ?? page.table, afterId: page.hasMore ? page.lastId : null };
  }
  return false;
}

function progress(
  ctx: SnapshotSyncContext,
  event: "pulled" | "applied",
  page: SnapshotPage,
  rowsDone: number,
): SyncProgress {
  return {
    direction: ctx.direction,
    stage: "snapshot",
    event,
    table: page.table,
    pageRows: page.rows.length,
    rowsDone,
  };
}
