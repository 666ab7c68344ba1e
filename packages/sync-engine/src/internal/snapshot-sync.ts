import { SYNCED_TABLES, type TableName } from "@centrovision/core";
import type { SyncPeer } from "../sync-peer.js";
import type { SyncDirection, SyncProgress } from "../sync-status.js";
import type { NodeInfo, SnapshotPage, SnapshotProgress } from "../sync-types.js";

export interface SnapshotSyncContext {
  readonly direction: SyncDirection;
  readonly source: SyncPeer;
  readonly target: SyncPeer;
  readonly sourceInfo: NodeInfo;
  readonly pageSize: number;
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
    const page = ctx.source.snapshot({ table, afterId, limit: ctx.pageSize });
    page.catch(() => {});
    return page;
  };
  let next: Promise<SnapshotPage> | undefined = read(from?.table ?? first, from?.afterId ?? null);
  let rowsDone = 0;
  while (next) {
    const page: SnapshotPage = await next;
    next = undefined;
    const following = page.hasMore ? page.table : tableAfter(page.table);
    if (following !== undefined && !ctx.isStopping()) {
      next = read(following, page.hasMore ? page.lastId : null);
    }
    ctx.onProgress(progress(ctx, "pulled", page, rowsDone));
    const result = await ctx.target.applySnapshot(
      { ...page.source, nodeName: ctx.sourceInfo.nodeName },
      page,
    );
    rowsDone += page.rows.length;
    ctx.onProgress(progress(ctx, "applied", page, rowsDone));
    if (result.progress.done) return true;
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
