import type { TableName } from "@centrovision/core";
import { BLOCKING_REASONS, isSyncError } from "../sync-errors.js";
import type { SyncPeer } from "../sync-peer.js";
import type { BlockReason, SyncDirection, SyncProgress } from "../sync-status.js";
import {
  compareCursors,
  type NodeInfo,
  type PeerState,
  START_CURSOR,
  type SyncCursor,
} from "../sync-types.js";
import { syncLog } from "./log-sync.js";
import type { PageSizer } from "./page-sizer.js";
import { copySnapshot } from "./snapshot-sync.js";

export interface DirectionSpec {
  readonly name: SyncDirection;
  readonly source: SyncPeer;
  readonly target: SyncPeer;
  /** How a target that never synced from the source starts: copy the tables, or replay the whole log. */
  readonly initial: "snapshot" | "log";
}

export interface DirectionContext {
  readonly sourceInfo: NodeInfo;
  /**
   * `sourceInfo` was read in this cycle, so its `maxTxid` bounds every cursor the target can hold
   * for it. An older reading does not (the source moved on since); the pull refuses a cursor
   * ahead of its node itself (CV006).
   */
  readonly sourceFresh: boolean;
  readonly targetInfo: NodeInfo;
  /** This direction's log page size, learnt across cycles. */
  readonly logPages: PageSizer;
  readonly maxPageSize: number;
  /** This direction's initial-sync page size, learnt across cycles. */
  readonly snapshotPages: PageSizer;
  readonly now: () => number;
  /** Reads what a peer holds about another (`SyncPeer.cursor`); the cycle shares one reading of each node's. */
  readonly cursorOf: (peer: SyncPeer, peerId: string) => Promise<PeerState>;
  readonly saveIdleCursor: boolean;
  /** Acknowledge every page to the source ({@link LogSyncContext.acknowledge}). */
  readonly acknowledge: boolean;
  readonly isStopping: () => boolean;
  readonly onProgress: (progress: SyncProgress) => void;
  /** Called when the direction enters an initial sync (copy or its log replay). */
  readonly onInitialSync: () => void;
}

export type DirectionOutcome =
  | {
      readonly kind: "blocked";
      readonly reason: BlockReason;
      readonly message: string;
      readonly tables: readonly TableName[];
    }
  | {
      readonly kind: "done";
      readonly drained: boolean;
      readonly saved: boolean;
      readonly conflicts: number;
      /** Where the target stands for the source now; null when an initial copy stopped before its log replay. */
      readonly cursor: SyncCursor | null;
      /** The last acknowledgement the source took in this direction; null when none was sent. */
      readonly acked: SyncCursor | null;
    };

/**
 * A target whose state for the source contradicts the source: resuming would skip or repeat a
 * history that no longer exists, so the direction stops with what to do instead of guessing.
 * A target that never synced (or was reset) has no state to contradict.
 */
function contradiction(spec: DirectionSpec, ctx: DirectionContext, state: PeerState, back: PeerState) {
  if (state.epoch === null) return undefined;
  const source = spec.source.label;
  const target = spec.target.label;
  const reset = `run a re-sync (engine.resync("${spec.name}"), i.e. cv_sync_reset_peer('${ctx.sourceInfo.nodeId}') on ${target})`;
  if (state.epoch !== ctx.sourceInfo.epoch) {
    return {
      reason: "epoch_changed" as const,
      message: `[sync-engine] ${source} was re-initialised or restored from a backup (its epoch changed) since ${target} last synced from it; ${reset}`,
    };
  }
  if (ctx.sourceFresh && ctx.sourceInfo.maxTxid < state.cursor.txid) {
    return {
      reason: "peer_restored" as const,
      message: `[sync-engine] ${source}'s log is behind the cursor ${target} holds for it: it was restored from a backup. Re-initialise it (cv_sync_init with p_reinit => true), then ${reset}`,
    };
  }
  if (back.acked !== null && compareCursors(back.acked, state.cursor) > 0) {
    return {
      reason: "peer_restored" as const,
      message: `[sync-engine] ${target} holds an older cursor for ${source} than it had acknowledged: it was restored from a backup. Re-initialise it (cv_sync_init with p_reinit => true) and re-sync`,
    };
  }
  return undefined;
}

function needsSnapshot(spec: DirectionSpec, state: PeerState): boolean {
  if (spec.initial !== "snapshot") return false;
  if (state.snapshotProgress !== null) return !state.snapshotProgress.done;
  return state.epoch === null && compareCursors(state.cursor, START_CURSOR) === 0;
}

/**
 * One direction of one cycle: check the target's state against the source, copy the tables if
 * the target never synced from it, then replay the log to the horizon. A refusal that a person
 * must resolve comes back as `blocked`; anything else throws.
 */
export async function runDirection(spec: DirectionSpec, ctx: DirectionContext): Promise<DirectionOutcome> {
  const [state, back] = await Promise.all([
    ctx.cursorOf(spec.target, ctx.sourceInfo.nodeId),
    ctx.cursorOf(spec.source, ctx.targetInfo.nodeId),
  ]);
  const contradicted = contradiction(spec, ctx, state, back);
  if (contradicted) return { kind: "blocked", ...contradicted, tables: [] };
  const common = {
    direction: spec.name,
    source: spec.source,
    target: spec.target,
    sourceInfo: ctx.sourceInfo,
    now: ctx.now,
  };
  try {
    let from = state.cursor;
    if (needsSnapshot(spec, state)) {
      ctx.onInitialSync();
      const complete = await copySnapshot(
        { ...common, pages: ctx.snapshotPages, isStopping: ctx.isStopping, onProgress: ctx.onProgress },
        state.snapshotProgress,
      );
      if (!complete)
        return { kind: "done", drained: false, saved: true, conflicts: 0, cursor: null, acked: null };
      // The copy set the cursor where its log replay starts.
      from = (await spec.target.cursor(ctx.sourceInfo.nodeId)).cursor;
    } else if (state.catchupUntil !== null && compareCursors(state.cursor, state.catchupUntil) < 0) {
      ctx.onInitialSync();
    }
    const result = await syncLog(
      {
        ...common,
        targetInfo: ctx.targetInfo,
        pages: ctx.logPages,
        maxPageSize: ctx.maxPageSize,
        saveIdleCursor: ctx.saveIdleCursor,
        acknowledge: ctx.acknowledge,
        acked: back.acked,
        isStopping: ctx.isStopping,
        onProgress: ctx.onProgress,
      },
      from,
    );
    return {
      kind: "done",
      drained: result.drained,
      saved: result.saved,
      conflicts: result.conflicts,
      cursor: result.cursor,
      acked: result.acked,
    };
  } catch (error) {
    if (isSyncError(error) && error.reason !== undefined && BLOCKING_REASONS.has(error.reason)) {
      return {
        kind: "blocked",
        reason: error.reason as BlockReason,
        message: error.message,
        tables: error.tables,
      };
    }
    throw error;
  }
}
