import type { CallOptions, TableName } from "@centrovision/core";
import type { Observable } from "rxjs";
import type {
  ApplyRequest,
  ApplyResult,
  AuditEvent,
  AuditQuery,
  AuditVerification,
  ClinicKey,
  ConflictQuery,
  ConflictResolution,
  NodeInfo,
  PeerState,
  PullPage,
  PurgeResult,
  ResolveResult,
  SealedAuditEvent,
  SnapshotApplyResult,
  SnapshotPage,
  SourceIdentity,
  SyncConflict,
  SyncCursor,
} from "./sync-types.js";

/** A node's hint that it has new changes. */
export interface ChangeNotice {
  /** The nodes the changes came from, when the node says (the cloud does); null: unknown. */
  readonly origins: readonly string[] | null;
  /**
   * The scopes the changes concern (the cloud's branches, as `NodeInfo.scope`), when the node
   * says; null or absent: unknown. A clinic holding none of them has nothing to pull.
   */
  readonly scopes?: readonly string[] | null;
}

/**
 * One node's sync API: the `cv_sync_*` functions of PROTOCOL.md as typed calls. Every call has
 * a deadline (`CallOptions.timeoutMs`, else the peer's default), is sent once (no retries of its
 * own) and rejects with a `CvError` only: `unavailable`/`timeout` when the node did not answer (the
 * outcome of a write is then unknown, which every call here tolerates), a {@link SyncError} with a
 * `reason` when the machinery refused. Replies are validated before they are returned.
 *
 * A peer never decides anything about a row: every decision is taken inside the node's database,
 * in the transaction of the call.
 */
export interface SyncPeer {
  /** For messages, e.g. `cloud (db.example.supabase.co)`; never a key or password. */
  readonly label: string;
  /**
   * Emits when the node may have new changes to send (a hint, never data): the engine then starts
   * its next cycle early instead of waiting out its interval. Optional; a peer without it is
   * polled. Emits also when it loses its connection and when it reconnects, since changes made
   * meanwhile are not heard.
   */
  readonly changes$?: Observable<ChangeNotice>;
  /**
   * Whether `changes$` is connected now (the clinic server's LISTEN is open, the cloud's Realtime
   * channel joined). While both peers' feeds are, a change starts a cycle by itself, and the engine
   * polls only every `quietIntervalMs`. A peer without it counts as not listening.
   */
  readonly listening?: () => boolean;
  /** Names the node (idempotent). `reinit` starts a new epoch: every peer then stops with `epoch_changed`. */
  init(
    nodeName: string,
    options?: CallOptions & { reinit?: boolean },
  ): Promise<Pick<NodeInfo, "nodeId" | "nodeName" | "epoch">>;
  node(options?: CallOptions): Promise<NodeInfo>;
  /** A page of this node's log after `after`, below its horizon, leaving out the consumer's own changes. */
  pull(
    request: { consumer: string; after: SyncCursor; limit: number },
    options?: CallOptions,
  ): Promise<PullPage>;
  /** Applies a batch from `request.source` in one transaction, saving `request.cursor` with it. */
  apply(request: ApplyRequest, options?: CallOptions): Promise<ApplyResult>;
  /**
   * Encodes `request` for a later `apply` of the same object, so the work is done while another
   * call is in flight (the engine prepares the next page while the current one is applied).
   * Optional: `apply` encodes what was not prepared.
   */
  readonly prepareApply?: (request: ApplyRequest) => void;
  /** What this node holds about `peerId`: where an engine resumes after a crash. */
  cursor(peerId: string, options?: CallOptions): Promise<PeerState>;
  /** Records that `consumer` has applied this node's log up to `cursor` (never moves back). */
  ack(consumer: string, cursor: SyncCursor, options?: CallOptions): Promise<void>;
  /** Entries `consumer` has not acknowledged and would receive: the "pending" count. */
  pending(consumer: string, options?: CallOptions): Promise<number>;
  /** A page of one table's rows in id order, for an initial sync. */
  snapshot(
    request: { table: TableName; afterId: string | null; limit: number },
    options?: CallOptions,
  ): Promise<SnapshotPage>;
  /** Writes a snapshot page of `source` and the copy's progress, in one transaction. */
  applySnapshot(
    source: SourceIdentity,
    page: SnapshotPage,
    options?: CallOptions,
  ): Promise<SnapshotApplyResult>;
  /**
   * Gives this node's own changes stamped later than its clock plus its allowed skew (made while
   * its clock ran ahead) the time it is now, and lowers its HLC floor if it is that far ahead
   * (`cv_sync_restamp_ahead`); resolves with how many log entries it re-stamped. Nothing changes
   * while the clock is still ahead.
   */
  restampAhead(options?: CallOptions): Promise<number>;
  /** Forgets `peerId` (cursor, epoch, progress): the way out of a blocked direction. True if it was known. */
  resetPeer(peerId: string, options?: CallOptions): Promise<boolean>;
  /**
   * Deletes log entries and tombstones older than `retention` (a PostgreSQL interval) that every
   * peer acknowledged, at most `options.limit` of each (default 10,000, oldest first): call again
   * while the result says `more`.
   */
  purge(retention?: string, options?: CallOptions & { limit?: number }): Promise<PurgeResult>;
  /** Conflicts recorded on this node, oldest first. */
  listConflicts(query?: ConflictQuery, options?: CallOptions): Promise<SyncConflict[]>;
  /**
   * Writes the chosen row as a new edit of this node and marks the conflict resolved; the edit
   * syncs like any other and closes the same conflict on the peer.
   */
  resolveConflict(
    id: string,
    resolution: ConflictResolution,
    options?: CallOptions & { resolvedBy?: string },
  ): Promise<ResolveResult>;
  /** The cloud: users whose clinic sessions and offline sign-ins must stop (banned or deleted; sql/0011). */
  disabledUsers(options?: CallOptions): Promise<string[]>;
  /** A clinic server: replaces its copy of the cloud's disabled users; resolves with their number. */
  setDisabledUsers(userIds: readonly string[], options?: CallOptions): Promise<number>;
  /** A clinic server: its session signing key, for its daemon to register in the cloud. */
  clinicKey(options?: CallOptions): Promise<ClinicKey>;
  /** The cloud: registers (or replaces) a clinic server's key, so it can mint that clinic's sessions. */
  registerClinicKey(key: ClinicKey, options?: CallOptions): Promise<void>;
  /**
   * Chains this node's committed audit events (sql/0012 `cv_audit_seal`); resolves with how many
   * it sealed (0 while another seal is at work).
   */
  sealAudit(options?: CallOptions): Promise<number>;
  /** This node's audit events (sql/0012 `cv_audit_events`), the latest `query.limit` (100) matching, oldest first. */
  auditEvents(query: AuditQuery, options?: CallOptions): Promise<AuditEvent[]>;
  /** Recomputes this node's audit chain (`cv_audit_verify`). */
  verifyAudit(options?: CallOptions): Promise<AuditVerification>;
  /** The cloud: the highest position of a clinic server's audit chain it holds (0: none). */
  auditHead(nodeId: string, options?: CallOptions): Promise<number>;
  /** A clinic server: its own sealed audit events after `position`, a batch in chain order, as sealed. */
  sealedAuditAfter(position: number, options?: CallOptions): Promise<SealedAuditEvent[]>;
  /** The cloud: takes a clinic server's sealed events as the continuation of its chain; resolves with how many. */
  receiveAudit(events: readonly SealedAuditEvent[], options?: CallOptions): Promise<number>;
  /** Releases what the peer created (an injected client is left open). Later calls reject with `unavailable`. */
  close(): Promise<void>;
}
