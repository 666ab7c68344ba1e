import { isServerDown } from "@centrovision/adapter-postgres/driver-errors";
import {
  CvError,
  type CvErrorOptions,
  type ErrorCode,
  SYNCED_TABLES,
  type TableName,
} from "@centrovision/core";

/**
 * Why the sync machinery refused a call, for code that must react (the engine blocks a
 * direction on the first five; the rest are retried):
 *
 * - `epoch_changed` (CV001): the source was re-initialised after a restore; its old cursor means nothing.
 * - `schema_drift` (CV002): a table differs between the nodes; its rows would be read with the wrong columns.
 * - `peer_restored` (CV006, or a cursor gone backwards): a node went back in time (backup restore).
 * - `duplicate_record` (CV004): the same record exists twice under different ids; a person must merge them.
 *   On a page that ends where more follows, a larger page is tried first, twice at most: the key
 *   may have moved between two rows the page split.
 * - `clock_ahead` (CV009): a change (or a PC's write) is stamped later than the receiving node's clock
 *   plus its allowed skew; nothing was applied. It goes through by itself once that node's clock
 *   has caught up with the stamp, or, for the clinic server's own changes, once its clock is right
 *   again (the engine re-stamps them there: `SyncPeer.restampAhead`).
 * - `cursor_mismatch` (CV003): another engine applied in between; re-read the cursor.
 * - `missing_parent` (23503): a child arrived before its parent; pull a larger page or wait.
 * - `invalid_request` (CV005), `id_changed` (CV007): a bug or a hand-made call, not a network problem.
 * - `transient` (serialization failure, deadlock): nothing was written; try again.
 * - `statement_timeout` (57014): the node cancelled the call past its statement_timeout; nothing
 *   was written; a smaller page fits.
 */
export type SyncErrorReason =
  | "epoch_changed"
  | "schema_drift"
  | "peer_restored"
  | "duplicate_record"
  | "clock_ahead"
  | "cursor_mismatch"
  | "missing_parent"
  | "invalid_request"
  | "id_changed"
  | "transient"
  | "statement_timeout";

/** Reasons that stop a direction until a person acts (or the cause goes away). */
export const BLOCKING_REASONS: ReadonlySet<SyncErrorReason> = new Set([
  "epoch_changed",
  "schema_drift",
  "peer_restored",
  "duplicate_record",
  "clock_ahead",
]);

export interface SyncErrorOptions extends CvErrorOptions {
  reason?: SyncErrorReason;
  /** SQLSTATE the node raised, when it raised one. */
  sqlstate?: string;
  /** Tables the error is about (schema drift). */
  tables?: readonly TableName[];
}

/**
 * A `CvError` from the sync machinery. `code` stays in core's closed union (so the router and the
 * daemon's status treat it like any other); `reason` says what exactly happened.
 */
export class SyncError extends CvError {
  readonly reason: SyncErrorReason | undefined;
  readonly sqlstate: string | undefined;
  readonly tables: readonly TableName[];

  constructor(code: ErrorCode, message: string, options: SyncErrorOptions = {}) {
    super(code, message, options);
    this.reason = options.reason;
    this.sqlstate = options.sqlstate;
    this.tables = options.tables ?? [];
  }
}

export function isSyncError(error: unknown, reason?: SyncErrorReason): error is SyncError {
  return error instanceof SyncError && (reason === undefined || error.reason === reason);
}

/** Synced table names found in a server message; anything else in it (it may quote row values) is ignored. */
function tablesIn(message: string | undefined): TableName[] {
  const words = new Set((message ?? "").split(/[^a-z_]+/));
  return SYNCED_TABLES.filter((table) => words.has(table));
}

/** What a 42501 means for the function called: a PC's client functions are not the daemon's. */
function forbidden(fn: string | undefined): string {
  if (fn === "cv_client_pending" || fn === "cv_client_position")
    return `this login may not call ${fn} (a PC's login needs centrovision_app)`;
  if (fn?.startsWith("cv_client_"))
    return `this login may not call ${fn} by itself: a PC writes only as a signed-in person (its clinic session, or a user session on the cloud); sign in`;
  return "this login may not call the sync functions (grant it centrovision_sync)";
}

/**
 * Translates a SQLSTATE raised on `peer` by a call of `fn` into a `SyncError`. Messages are
 * written here, never copied from the server: PostgreSQL's DETAIL and the machinery's messages
 * can quote row values. `serverMessage` is only searched for table names (CV010's fixed sentences,
 * sql/0003, and CV009's, sql/0005 `cv_sync.check_clock`: which timestamp of which table and how
 * many seconds ahead, never its value, are the exceptions quoted).
 */
export function fromSqlState(state: string, peer: string, serverMessage?: string, fn?: string): SyncError {
  const make = (code: ErrorCode, text: string, options: SyncErrorOptions = {}) =>
    new SyncError(code, `[sync-engine] ${peer}: ${text}`, { sqlstate: state, ...options });
  const tables = tablesIn(serverMessage);
  switch (state) {
    case "CV001":
      return make(
        "conflict",
        "the sending node was re-initialised or restored from a backup (its epoch changed); nothing was applied. " +
          "Re-sync: run cv_sync_reset_peer for it on the receiving node, then sync again",
        { reason: "epoch_changed" },
      );
    case "CV002":
      return make(
        "invalid_config",
        `schema drift: ${tables.length > 0 ? `table(s) ${tables.join(", ")}` : "a synced table"} differ between the two nodes; ` +
          "nothing was applied. Apply the same sql/ migrations on both, then sync again",
        { reason: "schema_drift", tables },
      );
    case "CV003":
      return make(
        "conflict",
        "another sync engine applied from the same peer in between; re-reading the cursor",
        {
          reason: "cursor_mismatch",
        },
      );
    case "CV004":
      return make(
        "constraint",
        `the same record exists twice under different ids${tables[0] ? ` in ${tables[0]}` : ""} (a unique key); ` +
          "merge or correct one of them on either side, then sync again",
        { reason: "duplicate_record", tables },
      );
    case "CV005":
      return make("invalid_input", "the sync machinery rejected a malformed request (CV005)", {
        reason: "invalid_request",
      });
    case "CV006":
      return make(
        "conflict",
        "a cursor is ahead of this node's log: it was restored from a backup or rebuilt after its peer last read it. " +
          "Re-initialise it (cv_sync_init with p_reinit) and re-sync",
        { reason: "peer_restored" },
      );
    case "CV009":
      return make(
        "invalid_input",
        fn?.startsWith("cv_client_")
          ? `${serverMessage ?? "a write of this PC is stamped ahead of the server's clock"}. ` +
              "Check this PC's date and time (NTP); its writes stay queued and go through once the server's clock has caught up with them"
          : `${serverMessage ?? "a change is stamped ahead of this node's clock"}. ` +
              "Check the clocks (NTP) of both nodes; this direction resumes by itself once the change is no longer ahead",
        { reason: "clock_ahead", tables },
      );
    case "CV007":
      return make("constraint", "the id of a synced row cannot change (CV007)", { reason: "id_changed" });
    case "23503":
      return make("constraint", `a row arrived before its parent${tables[0] ? ` (${tables[0]})` : ""}`, {
        reason: "missing_parent",
        tables,
      });
    case "40001":
    case "40P01":
      return make(
        "unknown",
        `the transaction was aborted to resolve a concurrent write (SQLSTATE ${state}); nothing was written`,
        {
          reason: "transient",
        },
      );
    case "57014":
      return make("timeout", "the statement was cancelled (statement_timeout); nothing was written", {
        reason: "statement_timeout",
      });
    case "42501":
      return make("unauthorized", forbidden(fn));
    case "CV010":
      // sql/0003's fixed sentences (no values): what is wrong with the person's clinic session.
      return make(
        "unauthorized",
        `the clinic server refused the person's session: ${serverMessage ?? "not valid"}; sign in again`,
      );
    case "28P01":
    case "28000":
      return make("unauthorized", `the login was refused (SQLSTATE ${state})`);
    case "42883":
    case "42P01":
    case "3F000":
      return make(
        "invalid_config",
        `the sync machinery is missing (SQLSTATE ${state}); apply the sql/ migrations`,
      );
  }
  if (isServerDown(state)) {
    return make("unavailable", `the database is not serving (SQLSTATE ${state})`);
  }
  if (state.startsWith("23"))
    return make("constraint", `a constraint was violated (SQLSTATE ${state})`, { tables });
  if (state.startsWith("CV"))
    return make("unknown", `the sync machinery refused the call (SQLSTATE ${state})`);
  return make("unknown", `the database reported SQLSTATE ${state}`);
}
