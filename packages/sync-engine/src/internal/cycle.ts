import { type ErrorCode, isCvError, isTierDown, type TableName } from "@centrovision/core";
import type { SyncEngineConfig } from "../engine-options.js";
import { isSyncError } from "../sync-errors.js";
import type { SyncPeer } from "../sync-peer.js";
import type {
  BlockedDirection,
  ChangeLogState,
  SyncDirection,
  SyncPhase,
  SyncProgress,
  SyncStatus,
} from "../sync-status.js";
import { compareCursors, type NodeInfo, type PeerState, type SyncCursor } from "../sync-types.js";
import { backoffDelay } from "./backoff.js";
import { type MeasuredNode, measureNode } from "./clock.js";
import { type DirectionSpec, runDirection } from "./direction.js";
import { PageSizer } from "./page-sizer.js";

export interface CycleRunnerOptions {
  readonly local: SyncPeer;
  readonly remote: SyncPeer;
  readonly config: Readonly<SyncEngineConfig>;
  readonly now: () => number;
  readonly random: () => number;
  readonly isStopping: () => boolean;
  readonly publish: (patch: Partial<SyncStatus>) => void;
  readonly onProgress: (progress: SyncProgress) => void;
}

/** Deadline of the counts refreshed after every cycle: they must not hold the loop up. */
const COUNT_TIMEOUT_MS = 2_000;
/** Batches (of 10,000 entries at most) one purge deletes before the loop goes on; the next purge continues. */
const PURGE_BATCHES = 100;
/**
 * How long the cloud's identity (epoch, fingerprint, clock, quarantine) read by one cycle serves
 * the next ones, and its record of the clinic server (which the engine moves itself as it applies
 * and acknowledges). A changed epoch or a restored log is refused by the pull and the apply
 * themselves whatever the engine last read, and an apply from a cursor the cloud no longer holds
 * (another engine, a reset) by its expected cursor; a failed cycle reads both again.
 */
const REMOTE_NODE_MAX_AGE_MS = 60_000;

/** A record that only the engine's own applies and acknowledgements move: no initial sync in it. */
function steady(state: PeerState): boolean {
  return (
    state.epoch !== null &&
    state.snapshotProgress === null &&
    (state.catchupUntil === null || compareCursors(state.cursor, state.catchupUntil) >= 0)
  );
}

/** Tables whose fingerprint differs between the two nodes (or exists on one side only). */
function drifted(a: NodeInfo, b: NodeInfo): TableName[] {
  const names = new Set([...Object.keys(a.fingerprint), ...Object.keys(b.fingerprint)]);
  return [...names].filter((name) => a.fingerprint[name] !== b.fingerprint[name]).sort() as TableName[];
}

/** Code and message of a failure, fit for the status: a foreign error's text is not trusted to be free of data. */
function describe(error: unknown): { code: ErrorCode; message: string } {
  if (isCvError(error)) return { code: error.code, message: error.message };
  const name = error instanceof Error ? error.name : typeof error;
  return { code: "unknown", message: `[sync-engine] unexpected ${name} during a cycle` };
}

/**
 * One sync cycle and the state that carries over between cycles: failures for the backoff,
 * blocked directions, when each direction last drained (lag) and saved a cursor.
 */
export class CycleRunner {
  private failures = 0;
  /** The last pull drained the cloud's log; a `pushOnly` cycle may then leave the pull out. */
  private pullCaughtUp = false;
  private readonly blocked = new Map<SyncDirection, BlockedDirection>();
  private readonly drainedAt = new Map<SyncDirection, number>();
  private readonly cursorSavedAt = new Map<SyncDirection, number>();
  private localInfo: NodeInfo | undefined;
  private purgedAt: number | undefined;
  private changeLog: SyncStatus["changeLog"] = { clinic: null, cloud: null };
  private remoteInfo: NodeInfo | undefined;
  /** The cloud's identity as the last cycle that read it measured it, and when. */
  private remoteMeasured: (MeasuredNode & { at: number }) | undefined;
  /** The cloud's record of the clinic server as last read (when) and since moved by this engine. */
  private remoteState: { state: PeerState; at: number } | undefined;
  /** The cycle in flight took the cloud's record of the clinic server from an earlier one. */
  private remoteStateKept = false;
  /** When the pull last acknowledged to the cloud. */
  private pullAckedAt: number | undefined;
  /** The last `runDirections` blocked the pull on a cloud identity read in an earlier cycle. */
  private staleRefusal = false;
  /** Conflicts the directions of the cycle in flight recorded (the clinic server's count then changed). */
  private recordedConflicts = 0;
  private readonly directions: readonly DirectionSpec[];
  /** Per direction, the page sizes learnt so far (they carry over between cycles). */
  private readonly pages = new Map<SyncDirection, { log: PageSizer; snapshot: PageSizer }>();

  constructor(private readonly options: CycleRunnerOptions) {
    const { local, remote, config } = options;
    this.directions = [
      { name: "pull", source: remote, target: local, initial: config.initialSync },
      { name: "push", source: local, target: remote, initial: "log" },
    ];
    for (const { name } of this.directions) {
      this.pages.set(name, {
        log: new PageSizer(config.pageSize, config.pageBudgetMs),
        snapshot: new PageSizer(config.snapshotPageSize, config.pageBudgetMs),
      });
    }
  }

  /** Whether the last cycle failed: the wait is then a backoff, which no change feed shortens. */
  backingOff(): boolean {
    return this.failures > 0;
  }

  /**
   * Wait before the next cycle: the interval (the quiet one while both change feeds are
   * `listening`), or the backoff after failures.
   */
  nextDelayMs(listening: boolean): number {
    const { config, random } = this.options;
    if (this.failures === 0)
      return listening ? Math.max(config.intervalMs, config.quietIntervalMs) : config.intervalMs;
    return backoffDelay(this.failures, config.minBackoffMs, config.maxBackoffMs, random);
  }

  unblock(direction: SyncDirection): void {
    this.blocked.delete(direction);
    this.remoteState = undefined;
  }

  async remoteNodeId(): Promise<string> {
    this.remoteInfo ??= await this.options.remote.node();
    return this.remoteInfo.nodeId;
  }

  /** The scope the cloud says the engine's credential holds there, once a cycle has read it (see `NodeInfo.scope`). */
  knownRemoteScope(): readonly string[] | null | undefined {
    return this.remoteInfo?.scope;
  }

  /** The clinic server's node id once a cycle has read it, without asking. */
  knownLocalNodeId(): string | undefined {
    return this.localInfo?.nodeId;
  }

  async localNodeId(): Promise<string> {
    this.localInfo ??= await this.options.local.node();
    return this.localInfo.nodeId;
  }

  /**
   * Runs one cycle; never rejects (a failure is recorded in the status and counted for the backoff).
   * `pushOnly`: the cloud's wake-up feed vouches it has nothing new for the clinic server, so the
   * pull is left out when the last one drained the cloud's log.
   */
  async run(options: { pushOnly?: boolean } = {}): Promise<void> {
    const { publish, now } = this.options;
    publish({ phase: "pulling", nextCycleAt: null });
    let failure: unknown;
    let complete = true;
    const started = now();
    const pushOnly = options.pushOnly === true && this.pullCaughtUp;
    try {
      complete = await this.runDirectionsFresh(pushOnly);
      // A pull refused on an identity read earlier (the cloud re-initialised or restored since):
      // read it now and go again, so the block says what happened and what to do.
      if (this.staleRefusal) {
        this.remoteMeasured = undefined;
        complete = await this.runDirections(pushOnly);
      }
    } catch (error) {
      failure = error;
      complete = false;
    }
    // After a network failure the cloud's count would only wait out its deadline; the clinic's
    // backlog is what matters then (the router's failback waits on it). A pull that drained the
    // cloud's log in this cycle left nothing to count.
    const pulledAll = (this.drainedAt.get("pull") ?? Number.NEGATIVE_INFINITY) >= started;
    const counts = await this.counts(
      failure === undefined || !isTierDown(failure) ? (pulledAll ? "drained" : "ask") : "skip",
      // The clinic server's open conflicts as the cycle read them at its start, unless it recorded some.
      failure === undefined && this.recordedConflicts === 0 ? this.localInfo : undefined,
    );
    if (complete) await this.purgeWhenDue();
    this.failures = failure === undefined ? 0 : this.failures + 1;
    if (failure !== undefined || this.blocked.size > 0) {
      this.remoteMeasured = undefined;
      this.remoteState = undefined;
    }
    const at = new Date(now()).toISOString();
    const last = [...this.drainedAt.values()];
    publish({
      ...counts,
      phase: this.restingPhase(),
      blocked: [...this.blocked.values()],
      consecutiveFailures: this.failures,
      lastError: failure === undefined ? null : { ...describe(failure), at },
      lagMs: last.length === this.directions.length ? now() - Math.min(...last) : null,
      changeLog: this.changeLog,
      ...(complete && { lastSuccessAt: at }),
      progress: undefined,
    });
  }

  /**
   * Keeps both logs bounded: every `purgeIntervalMs`, after a cycle that drained both ways, each
   * node drops what every peer acknowledged longer ago than the retention. A failure is kept in
   * the status and never fails the cycle: the log only grows until the next purge.
   */
  private async purgeWhenDue(): Promise<void> {
    const { config, now, local, remote, isStopping } = this.options;
    if (config.purgeIntervalMs === 0) return;
    if (this.purgedAt !== undefined && now() - this.purgedAt < config.purgeIntervalMs) return;
    this.purgedAt = now();
    const purge = async (peer: SyncPeer, before: ChangeLogState | null): Promise<ChangeLogState> => {
      let purged = 0;
      try {
        for (let batch = 0; batch < PURGE_BATCHES && !isStopping(); batch++) {
          const result = await peer.purge(config.purgeRetention);
          purged += result.logEntries;
          if (!result.more) {
            return { entries: result.logSize, purged, purgedAt: new Date(now()).toISOString(), error: null };
          }
        }
        return { entries: null, purged, purgedAt: new Date(now()).toISOString(), error: null };
      } catch (error) {
        const at = new Date(now()).toISOString();
        return {
          entries: before?.entries ?? null,
          purged,
          purgedAt: before?.purgedAt ?? null,
          error: { ...describe(error), at },
        };
      }
    };
    const [clinic, cloud] = await Promise.all([
      purge(local, this.changeLog.clinic),
      purge(remote, this.changeLog.cloud),
    ]);
    this.changeLog = { clinic, cloud };
  }

  private restingPhase(): SyncPhase {
    return this.blocked.size > 0 ? "blocked" : "idle";
  }

  /**
   * {@link runDirections}; again with the cloud's record of the clinic server read anew when an
   * apply found the cloud elsewhere than the record an earlier cycle left (CV003: another engine
   * or a reset moved it), so that costs no failed cycle.
   */
  private async runDirectionsFresh(pushOnly: boolean): Promise<boolean> {
    try {
      return await this.runDirections(pushOnly);
    } catch (error) {
      if (!this.remoteStateKept || !isSyncError(error, "cursor_mismatch")) throw error;
      this.remoteState = undefined;
      return this.runDirections(pushOnly);
    }
  }

  /** The cloud's record of the clinic server: the one an earlier cycle read and moved, while fresh. */
  private async remoteCursor(clinicId: string): Promise<PeerState> {
    const { remote, now } = this.options;
    const known = this.remoteState;
    if (known !== undefined && now() - known.at < REMOTE_NODE_MAX_AGE_MS) {
      this.remoteStateKept = true;
      return known.state;
    }
    const at = now();
    const state = await remote.cursor(clinicId);
    this.remoteState = steady(state) ? { state, at } : undefined;
    return state;
  }

  /** Moves the kept record of the clinic server on the cloud as a direction moved it. */
  private keep(direction: SyncDirection, moved: { cursor: SyncCursor | null; acked: SyncCursor | null }) {
    const known = this.remoteState;
    if (known === undefined) return;
    if (direction === "push" && moved.cursor !== null) {
      this.remoteState = { ...known, state: { ...known.state, cursor: moved.cursor } };
    }
    if (direction === "pull" && moved.acked !== null) {
      this.remoteState = { ...known, state: { ...known.state, acked: moved.acked } };
    }
  }

  /** True when both directions drained their source; `pushOnly` leaves the pull out. */
  private async runDirections(pushOnly: boolean): Promise<boolean> {
    const { local, remote, config, now, publish } = this.options;
    const cycleStarted = now();
    this.staleRefusal = false;
    this.remoteStateKept = false;
    this.recordedConflicts = 0;
    const [localNode, remoteNode] = await Promise.all([measureNode(local, now), this.measureRemote()]);
    this.localInfo = localNode.info;
    this.remoteInfo = remoteNode.info;
    publish({
      clockSkewMs: Math.round(remoteNode.offsetMs - localNode.offsetMs),
      quarantined: remoteNode.info.quarantined,
      schemaDrift: drifted(localNode.info, remoteNode.info),
    });
    if (localNode.info.nodeId === remoteNode.info.nodeId) {
      for (const spec of this.directions)
        this.block(spec.name, "same_node", [], sameNodeMessage(local, remote));
      return false;
    }
    let complete = true;
    // Both directions read each node's record of the other: one call per node serves both. What
    // the pull changes in them (the clinic server's cursor for the cloud, the cloud's `acked` for
    // the clinic server) is what the push does not read: its cursor on the cloud, and on the clinic
    // server what the cloud acknowledged.
    const states = new Map<SyncPeer, Promise<PeerState>>();
    const cursorOf = (peer: SyncPeer, peerId: string): Promise<PeerState> => {
      const known = states.get(peer) ?? (peer === remote ? this.remoteCursor(peerId) : peer.cursor(peerId));
      states.set(peer, known);
      return known;
    };
    this.pullCaughtUp = false;
    for (const spec of this.directions) {
      if (this.options.isStopping()) return false;
      const started = now();
      if (spec.name === "pull" && pushOnly) {
        this.pullCaughtUp = true;
        this.drainedAt.set("pull", started);
        continue;
      }
      const [sourceInfo, targetInfo] =
        spec.name === "pull" ? [remoteNode.info, localNode.info] : [localNode.info, remoteNode.info];
      const sourceFresh = spec.name === "push" || remoteNode.at >= cycleStarted;
      publish({ phase: spec.name === "pull" ? "pulling" : "pushing" });
      const savedAt = this.cursorSavedAt.get(spec.name);
      const pages = this.pages.get(spec.name) as { log: PageSizer; snapshot: PageSizer };
      const context: Parameters<typeof runDirection>[1] = {
        sourceInfo,
        sourceFresh,
        targetInfo,
        logPages: pages.log,
        maxPageSize: Math.max(config.maxPageSize, config.pageSize),
        snapshotPages: pages.snapshot,
        now,
        cursorOf,
        saveIdleCursor: savedAt === undefined || started - savedAt >= config.idleCursorSaveMs,
        // The clinic server's acknowledgements hold its PCs there until the cloud has their
        // writes (cv_client_pending): the push's go at once. The cloud's only count and purge.
        acknowledge:
          spec.name === "push" ||
          this.pullAckedAt === undefined ||
          started - this.pullAckedAt >= config.idleCursorSaveMs,
        isStopping: this.options.isStopping,
        onProgress: (progress) => {
          this.options.onProgress(progress);
          publish({ progress });
        },
        onInitialSync: () => publish({ phase: "initial-sync" }),
      };
      let outcome = await runDirection(spec, context);
      // Refused as stamped ahead of the cloud's clock: changes the clinic server made while its own
      // clock ran ahead, which no wait would let through (a stamp in 9999). Once its clock is right
      // they are re-stamped there (nothing changes while it is still ahead) and sent again.
      if (
        outcome.kind === "blocked" &&
        outcome.reason === "clock_ahead" &&
        spec.name === "push" &&
        (await local.restampAhead()) > 0
      ) {
        outcome = await runDirection(spec, context);
      }
      if (outcome.kind === "blocked") {
        if (!sourceFresh) this.staleRefusal = true;
        this.block(spec.name, outcome.reason, outcome.tables, outcome.message);
        complete = false;
        continue;
      }
      this.blocked.delete(spec.name);
      this.keep(spec.name, outcome);
      if (spec.name === "pull" && outcome.acked !== null) this.pullAckedAt = started;
      this.recordedConflicts += outcome.conflicts;
      if (outcome.saved) this.cursorSavedAt.set(spec.name, started);
      if (outcome.drained) this.drainedAt.set(spec.name, started);
      else complete = false;
      if (spec.name === "pull") this.pullCaughtUp = outcome.drained;
    }
    return complete;
  }

  private block(
    direction: SyncDirection,
    reason: BlockedDirection["reason"],
    tables: readonly TableName[],
    message: string,
  ) {
    const known = this.blocked.get(direction);
    if (known?.reason === reason && known.message === message) return;
    this.blocked.set(direction, {
      direction,
      reason,
      message,
      tables,
      since: new Date(this.options.now()).toISOString(),
    });
  }

  /** The cloud's identity: read again once the last reading is `REMOTE_NODE_MAX_AGE_MS` old. */
  private async measureRemote(): Promise<MeasuredNode & { at: number }> {
    const { remote, now } = this.options;
    const known = this.remoteMeasured;
    if (known !== undefined && now() - known.at < REMOTE_NODE_MAX_AGE_MS) return known;
    const at = now();
    this.remoteMeasured = { ...(await measureNode(remote, now)), at };
    return this.remoteMeasured;
  }

  /**
   * Backlogs and open conflicts, best effort: a count that fails keeps its last value. The cloud's
   * backlog is asked, known to be empty (`drained`), or skipped (the cloud is unreachable); the
   * clinic server's conflicts are asked unless `localNode` still tells them.
   */
  private async counts(
    remoteBacklog: "ask" | "drained" | "skip",
    localNode: NodeInfo | undefined,
  ): Promise<Partial<SyncStatus>> {
    const { local, remote } = this.options;
    const options = { timeoutMs: COUNT_TIMEOUT_MS };
    const remoteId = this.remoteInfo?.nodeId;
    const localId = this.localInfo?.nodeId;
    const [up, down, conflicts] = await Promise.allSettled([
      remoteId === undefined ? Promise.reject(new Error("unknown")) : local.pending(remoteId, options),
      remoteBacklog === "drained"
        ? Promise.resolve(0)
        : localId === undefined || remoteBacklog === "skip"
          ? Promise.reject(new Error("skipped"))
          : remote.pending(localId, options),
      localNode ?? local.node(options),
    ]);
    return {
      ...(up.status === "fulfilled" && { pendingUp: up.value }),
      ...(down.status === "fulfilled" && { pendingDown: down.value }),
      ...(conflicts.status === "fulfilled" && { conflictsOpen: conflicts.value.openConflicts }),
    };
  }
}

function sameNodeMessage(local: SyncPeer, remote: SyncPeer): string {
  return `[sync-engine] ${local.label} and ${remote.label} are the same database (same node id); point the engine at the clinic server and the cloud`;
}
