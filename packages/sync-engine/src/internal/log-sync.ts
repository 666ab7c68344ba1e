import { isSyncError } from "../sync-errors.js";
import type { SyncPeer } from "../sync-peer.js";
import type { SyncDirection, SyncProgress } from "../sync-status.js";
import {
  type ApplyRequest,
  type ApplyResult,
  compareCursors,
  type NodeInfo,
  type PullPage,
  START_CURSOR,
  type SyncCursor,
} from "../sync-types.js";
import type { PageSizer } from "./page-sizer.js";

/** Larger pages tried at one cursor when the target refuses a page as holding a record twice (CV004). */
const MAX_KEY_RETRIES = 2;

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

/** An apply sent to the target, not yet settled. */
interface Flight {
  readonly page: PullPage;
  /** The size the page was asked for. */
  readonly limit: number;
  readonly request: ApplyRequest;
  /** Sent while the page before it was still being applied. */
  readonly behind: boolean;
  /** Sent again after the target refused it having written nothing (40001, 40P01). */
  readonly again: boolean;
  readonly sent: number;
  readonly reply: Promise<ApplyResult>;
  /** The reply is known to be a failure. */
  failed: boolean;
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
 * While a page is applied, the next one is pulled, encoded and sent to the target behind it, which
 * reads it and waits for the first to commit; at most three pages are held at once. Stops at the
 * horizon, or at a page boundary once `isStopping()`.
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
  /**
   * The apply sent and not yet settled. The next page's apply is sent without waiting for it:
   * the target reads that batch while it writes this one (a clinic server writes it too, and
   * keeps it if the two share no row), then takes the source's cursor (cv_sync.lock_peer) once
   * this one commits, and must find it where it expects. Not after an apply slower than half the
   * page budget: waiting for the lock counts towards the hosted statement_timeout.
   */
  let inFlight: Flight | undefined;
  /** When the last apply settled: an apply sent before then waited for it, not for the target. */
  let lastSettled = 0;
  let lastApplyMs = 0;
  /** Larger pages tried at this cursor for a unique key the page may have split (MAX_KEY_RETRIES). */
  let keyRetries = 0;
  /** After a call the node cancelled (statement_timeout): pull a smaller page from where the target stands. */
  const retrySmaller = (error: unknown) => {
    const smaller = isSyncError(error, "statement_timeout") ? ctx.pages.shrink() : undefined;
    if (smaller === undefined) throw error;
    limit = smaller;
    next = pull(cursor, limit);
  };
  const send = (
    page: PullPage,
    limit: number,
    request: ApplyRequest,
    behind: boolean,
    again = false,
  ): Flight => {
    const reply = settled(ctx.target.apply(request));
    const flight: Flight = { page, limit, request, behind, again, sent: ctx.now(), reply, failed: false };
    reply.catch(() => {
      flight.failed = true;
    });
    return flight;
  };
  /**
   * Waits for the apply in flight and counts its page. False when it failed in a way the replay
   * recovers from by pulling again from where the target stands (`next`); any later apply was
   * sent expecting that page's cursor and is then refused (CV003) or finds it applied.
   */
  const settle = async (): Promise<boolean> => {
    const flight = inFlight as Flight;
    inFlight = undefined;
    let result: ApplyResult;
    try {
      result = await flight.reply;
    } catch (error) {
      // Sent behind the page before it, it reached the source's cursor first: that page is
      // applied now (it settled first), so this one goes again, alone.
      if (flight.behind && isSyncError(error, "cursor_mismatch")) {
        inFlight = send(flight.page, flight.limit, flight.request, false);
        return settle();
      }
      // Refused with nothing written, by a concurrent write or a deadlock (a page a clinic server
      // writes early, behind this one, can take a row this one needs): once more at once, alone.
      if (isSyncError(error, "transient") && !flight.again) {
        inFlight = send(flight.page, flight.limit, flight.request, false, true);
        return settle();
      }
      lastSettled = ctx.now();
      // A child written by a transaction with a lower id than its parent's sits before the parent
      // in the log; a larger page takes both into one batch. Past the horizon it must wait. So does
      // a unique key moved from one row to another (a swap) when the page ends between the two (the
      // target checks the keys once a page is written), but twice at most: a record registered on
      // both sides fails every larger page too, each written whole and undone, until one outlasts
      // the statement timeout and the person who must merge the records is never told.
      const splitKey = isSyncError(error, "duplicate_record") && keyRetries < MAX_KEY_RETRIES;
      if (
        (isSyncError(error, "missing_parent") || splitKey) &&
        flight.page.hasMore &&
        flight.limit < ctx.maxPageSize
      ) {
        if (splitKey) keyRetries += 1;
        limit = Math.min(flight.limit * 2, ctx.maxPageSize);
        next = pull(cursor, limit);
        return false;
      }
      retrySmaller(error);
      return false;
    }
    const now = ctx.now();
    lastApplyMs = now - Math.max(flight.sent, lastSettled);
    lastSettled = now;
    ctx.pages.record(lastApplyMs, flight.page.changes.length >= flight.limit);
    applied += result.applied;
    conflicts += result.conflicts;
    cursor = flight.page.cursor;
    keyRetries = 0;
    saved = true;
    if (acknowledging) acks.push(cursor);
    done += flight.page.changes.length;
    ctx.onProgress(progress(ctx, "applied", flight.page.changes.length, done, total));
    drained = !flight.page.hasMore;
    return true;
  };
  /** Settles the apply in flight, then `sent` (sent after it) as well when the first failed. */
  const settleBefore = async (sent?: Promise<unknown>): Promise<boolean> => {
    try {
      if (await settle()) return true;
    } catch (error) {
      await sent?.catch(() => {});
      throw error;
    }
    await sent?.catch(() => {});
    return false;
  };
  while (next || inFlight) {
    if (!next) {
      await settle();
      continue;
    }
    let page: PullPage;
    let request: ApplyRequest;
    let asked: number;
    try {
      ({ page, limit: asked, request } = await next);
    } catch (error) {
      next = undefined;
      if (inFlight && !(await settleBefore())) continue;
      retrySmaller(error);
      continue;
    }
    next = undefined;
    limit = asked;
    const moved = compareCursors(page.cursor, request.expected) > 0;
    const idle = page.changes.length === 0 && !page.hasMore;
    if (!moved || (idle && !ctx.saveIdleCursor)) {
      if (inFlight && !(await settleBefore())) continue;
      drained = !page.hasMore;
      break;
    }
    // Alone after a slow apply, or behind one that already failed (the next would fail too).
    if (inFlight && (lastApplyMs > ctx.pages.budgetMs / 2 || inFlight.failed) && !(await settleBefore()))
      continue;
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
    const sent = send(page, asked, request, inFlight !== undefined);
    if (inFlight && !(await settleBefore(sent.reply))) continue;
    inFlight = sent;
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
