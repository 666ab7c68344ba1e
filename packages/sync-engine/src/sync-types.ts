import type { ConflictResolution, SyncConflict, TableName } from "@centrovision/core";

export type { ConflictResolution, SyncConflict };

/**
 * A position in a node's change log, ordered by `(txid, seq)`; `{0, 0}` is the start. Only ever
 * stored by the node that consumes the log, in the transaction that applied the changes before it.
 */
export interface SyncCursor {
  readonly txid: number;
  readonly seq: number;
}

export const START_CURSOR: SyncCursor = Object.freeze({ txid: 0, seq: 0 });

/** Negative, zero or positive as `a` is before, at or after `b`. */
export function compareCursors(a: SyncCursor, b: SyncCursor): number {
  return a.txid === b.txid ? a.seq - b.seq : a.txid - b.txid;
}

/** Who a node is and what it looks like (`cv_sync_node`). */
export interface NodeInfo {
  readonly nodeId: string;
  readonly nodeName: string;
  /** Changes on every re-initialisation (after a restore): a peer holding an old one must not resume. */
  readonly epoch: string;
  /** Per synced table, a hash of its columns and conflict policy. */
  readonly fingerprint: Readonly<Record<string, string>>;
  /** The node's clock when it answered, ISO-8601. */
  readonly now: string;
  /** The next transaction id the node will hand out: no cursor into its log can be beyond it. */
  readonly maxTxid: number;
  /** Conflicts recorded here that wait for a reviewer. */
  readonly openConflicts: number;
  /**
   * Changes held in this node's quarantine (the cloud's: refused from a clinic, PROTOCOL.md
   * "Scope"); asked with a node credential, those its clinic sent.
   */
  readonly quarantined: number;
  /**
   * The scope the caller holds there: for a clinic's node credential on the cloud, its branches
   * (with the all-zero id of rows every clinic holds); null: everything; undefined: the node did
   * not say (before sql/0017).
   */
  readonly scope?: readonly string[] | null;
  /**
   * The forms of a batch the node's `cv_sync_apply` takes (`array`, `positional`, and `deflated`
   * through `cv_sync_apply_deflated`); undefined: the node did not say (before
   * sql/functions/08_positional.sql), so it takes the array alone.
   */
  readonly applyFormats?: readonly string[];
}

/** What a target needs to know about the node a batch comes from. */
export interface SourceIdentity {
  readonly nodeId: string;
  readonly nodeName?: string;
  readonly epoch: string;
  readonly fingerprint: Readonly<Record<string, string>>;
}

/**
 * One entry of a node's change log, in the wire form of PROTOCOL.md. The engine never looks
 * inside `row`: it passes changes from `pull` to `apply` verbatim, and the target database
 * (whose schema the fingerprint vouches for) is what validates them.
 */
export interface SyncChange {
  readonly table: TableName;
  readonly row_id: string;
  /** `evict`: the row left this clinic's scope in the cloud (PROTOCOL.md "Scope"); `row` is its id alone. */
  readonly op: "upsert" | "delete" | "evict";
  /** The full row after the change; for a delete, the last row image. */
  readonly row: Readonly<Record<string, unknown>>;
  readonly version: string;
  readonly base_version: string | null;
  /** The node where the edit was made. */
  readonly origin: string;
  readonly hlc: string;
  /** Columns the edit changed; null means all. */
  readonly changed_columns: readonly string[] | null;
  /** The conflict a reviewed resolution settles. */
  readonly resolves?: string | null;
  /** Who made the change (PROTOCOL.md "Change log"); null when no signed-in person did. */
  readonly author?: ChangeAuthor | null;
  readonly txid: number;
  readonly seq: number;
}

/** The signed-in person behind a change, recorded where it was made and carried unchanged. */
export interface ChangeAuthor {
  readonly user: string;
  /** On a clinic server `online` or `clinic` (the clinic session's sign-in); on the cloud the token's method. */
  readonly sign_in?: string;
  readonly session?: string;
  /** On a clinic server the PC's login. */
  readonly device?: string;
  /** The node where the change was made. */
  readonly node: string;
}

/** One event of a node's audit trail (sql/0012 `cv_audit_events`): ids, author and time, never row data. */
export interface AuditEvent {
  readonly at: string;
  readonly action: "insert" | "update" | "delete" | "open";
  readonly table: string;
  readonly rowId: string;
  readonly patientId: string | null;
  readonly version: string | null;
  readonly changedColumns: readonly string[] | null;
  readonly author: ChangeAuthor | null;
  readonly node: string;
  /** Its place in the node's hash chain; null until sealed. */
  readonly position: number | null;
}

/** Which events `auditEvents` returns: the latest `limit` matching, oldest first. */
export interface AuditQuery {
  readonly patientId?: string;
  readonly userId?: string;
  readonly from?: string;
  readonly to?: string;
  readonly limit?: number;
}

/**
 * An audit event as its node sealed it (`cv_audit_sealed_after`), handed to the cloud unchanged:
 * the hash covers every field, so it travels as the server wrote it.
 */
export type SealedAuditEvent = Readonly<Record<string, unknown>> & { readonly position: number };

/** `cv_audit_verify`: whether this node's chain holds, and where it breaks. */
export interface AuditVerification {
  readonly events: number;
  readonly sealed: number;
  readonly unsealed: number;
  readonly ok: boolean;
  readonly brokenAt: number | null;
  readonly head: number;
}

/** A page of a node's log below its horizon (`cv_sync_pull`). */
export interface PullPage {
  readonly source: SourceIdentity;
  readonly now: string;
  /** Entries not originating at (or received from) the consumer; may be empty while the cursor moves. */
  readonly changes: readonly SyncChange[];
  /** Where the next page starts: past every entry scanned, or the horizon when the log is drained. */
  readonly cursor: SyncCursor;
  readonly hasMore: boolean;
}

export interface ApplyRequest {
  readonly source: SourceIdentity;
  /** The cursor the target must hold for the source, else `CV003` (another engine got there first). */
  readonly expected: SyncCursor;
  /** The cursor saved with the changes, in the same transaction. */
  readonly cursor: SyncCursor;
  readonly changes: readonly SyncChange[];
  /** Replaying the log over an initial copy: a change older than the copied row is stale, not concurrent. */
  readonly catchup?: boolean;
  /**
   * Send the changes as a positional batch (PROTOCOL.md "cv_sync_apply"), which the target must
   * list in `NodeInfo.applyFormats`: each table's columns once, each row as its values. A peer
   * over a direct connection sends the array all the same (the bytes are the LAN's; the array is
   * the cheaper read).
   */
  readonly positional?: boolean;
  /**
   * Send the batch deflated (PROTOCOL.md "cv_sync_apply_deflated"), which the target must list in
   * `NodeInfo.applyFormats`: a peer that sends the bytes of a request as they are (over HTTP)
   * does, when the deflated batch is within the target's limit; any other sends it as above.
   */
  readonly deflated?: boolean;
}

export interface ApplyResult {
  /** `duplicate`: the target already held this cursor (a retry after an unknown outcome); nothing changed. */
  readonly status: "applied" | "duplicate";
  readonly applied: number;
  readonly skipped: number;
  /** Conflict records created by this batch. */
  readonly conflicts: number;
  /** Changes a clinic's node credential sent outside its scope, held in the cloud's quarantine. */
  readonly quarantined?: number;
  /** Rows removed here because they left this clinic's scope in the cloud. */
  readonly evicted?: number;
}

/** Where an initial sync from a peer stands on the target: the next page is `table` after `afterId`. */
export interface SnapshotProgress {
  readonly table: TableName;
  readonly afterId: string | null;
  readonly done: boolean;
}

/** What a node holds about one peer (`cv_sync_cursor`). */
export interface PeerState {
  /** What this node has applied from the peer. */
  readonly cursor: SyncCursor;
  /** The peer's epoch when this node last applied from it; null when it never has (or was reset). */
  readonly epoch: string | null;
  /** An initial sync's log replay lasts until the cursor passes this. */
  readonly catchupUntil: SyncCursor | null;
  readonly snapshotProgress: SnapshotProgress | null;
  /** What the peer has applied from this node. */
  readonly acked: SyncCursor | null;
}

/**
 * One row of a snapshot page in wire form: its id, version and last writer's HLC (whose last 36
 * characters are the writer's node), and the row as the text of its table's row type, columns in
 * the page's `columns` order. The engine never parses the text: the target does, once.
 */
export type SnapshotRow = readonly [id: string, version: string, hlc: string, text: string];

/** A page of one table in id order (`cv_sync_snapshot`), for an initial sync. */
export interface SnapshotPage {
  readonly source: SourceIdentity;
  readonly now: string;
  readonly table: TableName;
  readonly afterId: string | null;
  readonly lastId: string | null;
  /** The table's columns in the order of every row text. */
  readonly columns: readonly string[];
  readonly rows: readonly SnapshotRow[];
  readonly hasMore: boolean;
  /** The log position at the horizon when the page was read: the copy reflects everything below it. */
  readonly cursor: SyncCursor;
}

export interface SnapshotApplyResult extends ApplyResult {
  /** Where the copy stands after this page. */
  readonly progress: SnapshotProgress;
}

export interface ConflictQuery {
  /** Default `open`. */
  readonly status?: "open" | "resolved" | "all";
  /** Default 100. */
  readonly limit?: number;
}

export interface ResolveResult {
  readonly id: string;
  /** The version the resolution wrote (for a delete, the deletion's). */
  readonly version: string;
}

/** A clinic server's session signing key (sql/0003), as its daemon registers it in the cloud. */
export interface ClinicKey {
  readonly keyId: string;
  /** 32 to 64 bytes, lowercase hex. A secret: never logged. */
  readonly key: string;
}

export interface PurgeResult {
  readonly logEntries: number;
  readonly tombstones: number;
  /** The batch was full: more may be due. */
  readonly more: boolean;
  /** Entries left in the node's log once nothing more was due; null while `more`. */
  readonly logSize: number | null;
}
