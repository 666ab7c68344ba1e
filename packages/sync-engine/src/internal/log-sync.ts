import { isSyncError } from "../sync-errors.js";
import type { SyncPeer } from "../sync-peer.js";
import type { SyncDirection, SyncProgress } from "../sync-status.js";
import {
  type ApplyRequest,
  compareCursors,
  type NodeInfo,
  type PullPage,
  START_CURSOR,
  type SyncCursor,
} from "../sync-types.js";
import type { PageSizer } from "./page-sizer.js";

export interface LogSyncContext {
  readonly direction: SyncDirection;
  readonly source: SyncPeer;
  readonly target: SyncPeer;
  readonly sourceInfo: NodeInfo;
  readonly targetInfo: NodeInfo;
  /** How many entries the next page asks for, learnt from how long pages take. */
  readonly pages: PageSizer;
  /** Largest page tried when a child arrives before its parent. */
  readonly maxPageSize: number;
  readonly now: () => number;
  /** Save the cursor even when nothing but filtered entries (or nothing) moved it. */
  readonly saveIdleCursor: boolean;
  /** What the source last heard the target acknowledge; a lost acknowledgement is repaired first. */
  readonly acked: SyncCursor | null;
  /**
   * Acknowledge to the source page by page. When false, only a replay of more than one page
   * does: the source then counts and purges by acknowledgements a little older, and a short
   * replay costs it one request (the pull) instead of two.
   */
  readonly acknowledge: boolean;
  readonly isStopping: () => boolean;
  readonly onProgress: (progress: SyncProgress) => void;
}

export interface LogSyncResult {
  readonly applied: number;
  readonly conflicts: number;
  /** True when the source's log was read up to its horizon. */
  readonly drained: boolean;
  /** True when at least one batch (or cursor) was saved on the target. */
  readonly saved: boolean;
  readonly cursor: SyncCursor;
  /** The last acknowledgement the source took in this replay; null when none was sent. */
  readonly acked: SyncCursor | null;
}

/** A promise whose rejection is handled even if nobody awaits it (a prefetch thrown away). */
function settled<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => {});
  return promise;
}

/**
 * Acknowledgements to the source, one at a time and never backwards; a newer cursor replaces
 * one still waiting. They only let the source count and purge: a lost one is repaired by the
 * next cycle, which acknowledges what the target holds.
 */
class AckQueue {
  private chain: Promise<void> = Promise.resolve();
  private wanted: SyncCursor | undefined;
  private error: unknown;
  /** The last acknowledgement the source took. */
  taken: SyncCursor | null = null;

  constructor(
    private readonly source: SyncPeer,
    private readonly consumer: string,
  ) {}

  push(cursor: SyncCursor): void {
    const queued = this.wanted !== undefined;
    this.wanted = cursor;
    if (queued) return;
    this.chain = this.chain.then(async () => {
      const cursor = this.wanted as SyncCursor;
      this.wanted = undefined;
      await this.source.ack(this.consumer, cursor).then(
        () => {
          this.taken = cursor;
        },
        (error: unknown) => {
          this.error = error;
        },
      );
    });
  }

  /** Waits for the last acknowledgement; throws the last failure, if any. */
  async flush(): Promise<void> {
    await this.chain;
    if (this.error !== undefined) throw this.error;
  }
}

/**
 * Moves the source's log to the target from `from` (the cursor the target holds), page by page:
 * each page applied in one transaction with the expected cursor, then acknowledged to the source.
 * The next page is fetched while the current one is applied, so at most two are held at once.
 * Stops at the horizon, or at a page boundary once `isStopping()`.
 */
export async function syncLog(ctx: LogSyncContext, from: SyncCursor): Promise<LogSyncResult> {
  const consumer = ctx.targetInfo.nodeId;
  const acks = new AckQueue(ctx.source, consumer);
  /**
   * A page, the size it was asked for (a prefetch may have asked before the sizer changed) and its
   * apply request, expecting the cursor the page was pulled after and encoded for the target as
   * soon as the page arrives: a prefetched page is encoded while the one before it is applied. A
   * slow pull shrinks the next page; only the apply, the heavier half, lets pages grow.
   */
  const pull = (after: SyncCursor, limit: number) => {
    const started = ctx.now();
    return settled(
      ctx.source.pull({ consumer, after, limit }).then((page) => {
        ctx.pages.record(ctx.now() - started, false);
        const request: ApplyRequest = {
          source: { ...page.source, nodeName: ctx.sourceInfo.nodeName },
          expected: after,
          cursor: page.cursor,
          changes: page.changes,
          positional: ctx.targetInfo.applyFormats?.includes("positional") ?? false,
          deflated: ctx.targetInfo.applyFormats?.includes("deflated") ?? false,
        };
        ctx.target.prepareApply?.(request);
        return { page, limit, request };
      }),
    );
  };
  let acknowledging = ctx.acknowledge;
  if (acknowledging && (ctx.acked === null || compareCursors(ctx.acked, from) < 0)) {
    if (compareCursors(from, START_CURSOR) > 0) acks.push(from);
  }
  let cursor = from;
  let limit = ctx.pages.size;
  let done = 0;
  let applied = 0;
  let conflicts = 0;
  let saved = false;
  let next: ReturnType<typeof pull> | undefined = pull(cursor, limit);
  let drained = false;
  // A long replay (more than one page) reports how much there is; a short one skips the count.
  let total: number | undefined;
  let counting = false;
  /** After a call the node cancelled (statement_timeout): pull a smaller page from where the target stands. */
  const retrySmaller = (error: unknown) => {
    const smaller = isSyncError(error, "statement_timeout") ? ctx.pages.shrink() : undefined;
    if (smaller === undefined) throw error;
    limit = smaller;
    next = pull(cursor, limit);
  };
  while (next) {
    let page: PullPage;
    let request: ApplyRequest;
    try {
      ({ page, limit, request } = await next);
    } catch (error) {
      retrySmaller(error);
      continue;
    }
    next = undefined;
    const moved = compareCursors(page.cursor, cursor) > 0;
    const idle = page.changes.length === 0 && !page.hasMore;
    if (!moved || (idle && !ctx.saveIdleCursor)) {
      drained = !page.hasMore;
      break;
    }
    // A long replay keeps the source's count of what is left (below) and its purge current.
    if (page.hasMore) acknowledging = true;
    if (page.hasMore && !counting) {
      counting = true;
      ctx.source.pending(consumer).then(
        (pending) => (total = done + pending),
        () => {},
      );
    }
    ctx.onProgress(progress(ctx, "pulled", page.changes.length, done, total));
    if (page.hasMore && !ctx.isStopping()) next = pull(page.cursor, ctx.pages.size);
    const started = ctx.now();
    try {
      const result = await ctx.target.apply(request);
      ctx.pages.record(ctx.now() - started, page.changes.length >= limit);
      applied += result.applied;
      conflicts += result.conflicts;
    } catch (error) {
      // A child written by a transaction with a lower id than its parent's sits before the parent
      // in the log; a larger page takes both into one batch. Past the horizon it must wait.
      if (isSyncError(error, "missing_parent") && page.hasMore && limit < ctx.maxPageSize) {
        limit = Math.min(limit * 2, ctx.maxPageSize);
        next = pull(cursor, limit);
        continue;
      }
      retrySmaller(error);
      continue;
    }
    cursor = page.cursor;
    saved = true;
    if (acknowledging) acks.push(cursor);
    done += page.changes.length;
    ctx.onProgress(progress(ctx, "applied", page.changes.length, done, total));
    drained = !page.hasMore;
  }
  await acks.flush();
  return { applied, conflicts, drained, saved, cursor, acked: acks.taken };
}

function progress(
  ctx: LogSyncContext,
  event: "pulled" | "applied",
  pageRows: number,
  rowsDone: number,
  total: number | undefined,
): SyncProgress {
  return {
    direction: ctx.direction,
    stage: "log",
    event,
    pageRows,
    rowsDone,
    ...(total !== undefined && { total }),
  };
}
