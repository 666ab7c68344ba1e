import type { ErrorCode, TableName } from "@centrovision/core";

/** `pull` moves the cloud's changes to the clinic server (remote → local), `push` the other way. */
export type SyncDirection = "pull" | "push";

/**
 * What the engine is doing: `pulling`/`pushing`/`initial-sync` during a cycle, `idle` between
 * cycles, `blocked` between cycles while a direction is stopped (see {@link SyncStatus.blocked}),
 * `stopped` after `stop()`.
 */
export type SyncPhase = "idle" | "pulling" | "pushing" | "initial-sync" | "stopped" | "blocked";

/** Why a direction is stopped until a person acts (or the cause goes away, which is re-checked every cycle). */
export type BlockReason =
  | "epoch_changed"
  | "peer_restored"
  | "schema_drift"
  | "duplicate_record"
  | "clock_ahead"
  | "same_node";

export interface BlockedDirection {
  readonly direction: SyncDirection;
  readonly reason: BlockReason;
  /** What happened and what to do, in words an IT person can act on; never row data. */
  readonly message: string;
  /** Tables concerned (schema drift, duplicate record), when known. */
  readonly tables: readonly TableName[];
  readonly since: string;
}

/** A page moved during a long sync: an initial copy (`snapshot`) or a log replay (`log`). */
export interface SyncProgress {
  readonly direction: SyncDirection;
  readonly stage: "snapshot" | "log";
  /** `pulled`: the page arrived and is about to be applied; `applied`: it is saved on the target. */
  readonly event: "pulled" | "applied";
  /** The table being copied (snapshot only). */
  readonly table?: TableName;
  /** Rows (snapshot) or changes (log) of this page. */
  readonly pageRows: number;
  /** Rows or changes applied so far in this run of the stage (a resumed copy counts from the resume). */
  readonly rowsDone: number;
  /** Log replay: changes to move in this run (done + pending at the source), once counted; a long replay counts once. */
  readonly total?: number;
}

/** A node's change log as its last purge left it. */
export interface ChangeLogState {
  /** Entries left after the purge; null when it stopped with more still due (the next one goes on). */
  readonly entries: number | null;
  /** Entries the last purge deleted, all its batches together. */
  readonly purged: number;
  /** ISO time the last purge ended well; null until one did. */
  readonly purgedAt: string | null;
  /** Why the last purge failed (the next interval tries again), else null. */
  readonly error: { readonly code: ErrorCode; readonly message: string; readonly at: string } | null;
}

export interface SyncStatus {
  readonly phase: SyncPhase;
  /** Clinic changes the cloud has not acknowledged yet; null until first counted. */
  readonly pendingUp: number | null;
  /** Cloud changes the clinic server has not acknowledged yet; null until first counted. */
  readonly pendingDown: number | null;
  /**
   * Staleness: time since the older of the two directions last drained its source's log (what
   * the target held then is everything the source had). Null until both have drained once.
   */
  readonly lagMs: number | null;
  /** ISO time of the end of the last cycle in which both directions drained. */
  readonly lastSuccessAt: string | null;
  /** The last failure since the last fully successful cycle: code and message, never row data. */
  readonly lastError: { readonly code: ErrorCode; readonly message: string; readonly at: string } | null;
  /** Open conflicts recorded on the clinic server, waiting for a reviewer. */
  readonly conflictsOpen: number | null;
  /** This clinic's changes the cloud refused and holds in its quarantine for an administrator. */
  readonly quarantined: number | null;
  /** Cloud clock minus clinic clock, estimated from both nodes' `now` and round trips. */
  readonly clockSkewMs: number | null;
  readonly blocked: readonly BlockedDirection[];
  /** Tables whose schema differs between the nodes; their changes stop the direction that meets them. */
  readonly schemaDrift: readonly TableName[];
  /** Failed cycles in a row; the wait before the next one backs off with them. */
  readonly consecutiveFailures: number;
  /** ISO time the next cycle is due (unless `syncNow()`), null during a cycle. */
  readonly nextCycleAt: string | null;
  /** The last page moved by an initial sync or replay still running. */
  readonly progress?: SyncProgress;
  /** Each node's change log after its last purge (`purgeIntervalMs`); null until purged once. */
  readonly changeLog: { readonly clinic: ChangeLogState | null; readonly cloud: ChangeLogState | null };
}

export const INITIAL_STATUS: SyncStatus = Object.freeze({
  phase: "idle",
  pendingUp: null,
  pendingDown: null,
  lagMs: null,
  lastSuccessAt: null,
  lastError: null,
  conflictsOpen: null,
  quarantined: null,
  clockSkewMs: null,
  blocked: [],
  schemaDrift: [],
  consecutiveFailures: 0,
  nextCycleAt: null,
  changeLog: { clinic: null, cloud: null },
});
