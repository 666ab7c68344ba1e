import { type CallOptions, CvError, isCvError, SYNCED_TABLES, type TableName } from "@centrovision/core";
import type {
  ClientApplier,
  ClientApplyResult,
  ClientWrite,
  PreparedWrites,
  RejectedWrite,
} from "../client/client-apply.js";
import type { OfflineStore } from "./offline-store.js";
import {
  COPY_OWNER,
  copyOwner,
  DEAD_LETTERS,
  type DeadLetter,
  DOUBLE_BOOKINGS,
  type DoubleBookingNotice,
  doubleBookingKey,
  entriesOf,
  entryKey,
  isOwn,
  OUTBOX,
  type OutboxEntry,
} from "./outbox.js";

/** What one drain did. */
export interface DrainReport {
  /** Entries the server accepted (applied, already there, or settled as a conflict). */
  readonly sent: number;
  readonly applied: number;
  readonly skipped: number;
  /** Offline edits that met a concurrent server edit: settled by policy, both versions in `_conflicts`. */
  readonly conflicts: number;
  /**
   * Offline bookings that met an appointment made meanwhile (the same patient, doctor or room):
   * both kept, each clash listed on this PC (`doubleBookings()`) for a person to review.
   */
  readonly doubleBookings: number;
  /** Entries moved to the dead-letter list this time. */
  readonly deadLettered: number;
  /** Entries kept for a later drain because the server lacks a row they reference (yet). */
  readonly deferred: number;
  /** The person's entries still pending afterwards (changed while draining, or not reached). */
  readonly remaining: number;
}

export interface DrainOptions extends CallOptions {
  /** After each server batch is settled locally: entries handled so far, of how many. */
  onProgress?: (progress: { readonly done: number; readonly total: number }) => void;
}

const ORDER = new Map<string, number>(SYNCED_TABLES.map((table, index) => [table, index]));

/** Parents before children for upserts; deletes after every upsert, children first. */
function drainOrder(a: OutboxEntry, b: OutboxEntry): number {
  if (a.op !== b.op) return a.op === "upsert" ? -1 : 1;
  const order = (ORDER.get(a.table) ?? 0) - (ORDER.get(b.table) ?? 0);
  return a.op === "upsert" ? order : -order;
}

/** The local rows of a batch's upserts, one list per table, keyed `table:id`. */
async function localRows(
  store: OfflineStore,
  entries: readonly OutboxEntry[],
  options: CallOptions | undefined,
): Promise<Map<string, Readonly<Record<string, unknown>>>> {
  const byTable = new Map<TableName, string[]>();
  for (const entry of entries) {
    if (entry.op !== "upsert") continue;
    const ids = byTable.get(entry.table) ?? [];
    ids.push(entry.id);
    byTable.set(entry.table, ids);
  }
  const rows = new Map<string, Readonly<Record<string, unknown>>>();
  for (const [table, ids] of byTable) {
    for (const row of await store.table(table).list({ where: { id: { in: ids } } } as never, options)) {
      rows.set(entryKey(table, row.id), row);
    }
  }
  return rows;
}

/**
 * A foreign-key failure usually means the server has not received the parent yet (the clinic
 * server a few seconds behind the cloud at failover), which the next drain may find fixed. So may
 * a refusal by the policies: a write links only a patient its writer already sees there (sql/0004),
 * and a patient not received yet is not seen; the server does not say which of the two it is, or
 * it would tell whether another branch's patient exists. Any other refusal is final.
 * `cv_client_apply` names the SQLSTATE in its message.
 */
const isMissingParent = (refusal: RejectedWrite) =>
  (refusal.code === "constraint" && /\bSQLSTATE 23503\b/.test(refusal.message)) ||
  (refusal.code === "unauthorized" && /\bSQLSTATE 42501\b/.test(refusal.message));

interface Sent {
  readonly entry: OutboxEntry;
  readonly write: ClientWrite;
}

/** A batch read from the local file and checked for the server (`prepare`), ready to send. */
interface Batch {
  readonly sent: Sent[];
  /** Upserts whose local row is gone: nothing to send (see `batchWrites`). */
  readonly gone: OutboxEntry[];
  readonly prepared: PreparedWrites;
}

/** What the server did with a batch that sent nothing. */
const NOTHING_SENT: ClientApplyResult = {
  applied: 0,
  skipped: 0,
  conflicts: 0,
  ignored: 0,
  rejected: [],
  doubleBookings: [],
};

/**
 * A promise awaited later than it may settle (while another step of the pipeline runs): its
 * failure is thrown where it is awaited, not reported first as an unhandled rejection, which
 * would stop the process.
 */
function handled<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => {});
  return promise;
}

/**
 * A macrotask later: once a call just made is written to the socket (the driver writes it in a
 * microtask), so that the PC's own work on this thread (the local file is SQLite in WebAssembly,
 * synchronous) does not hold the call back.
 */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

type Totals = { -readonly [K in Exclude<keyof DrainReport, "remaining">]: number };

/**
 * A batch's writes: its deletes, and its upserts with their local rows. An upsert whose row is
 * gone from the local file without a delete recorded (a cascade of a row deleted by `absorb` or
 * `discardDeadLetter`, a dead letter retried after its row went) has nothing to send: it is
 * returned in `gone`, for `recordBatch` to drop.
 */
async function batchWrites(
  store: OfflineStore,
  chunk: readonly OutboxEntry[],
  options: CallOptions | undefined,
): Promise<{ sent: Sent[]; gone: OutboxEntry[] }> {
  const rows = await localRows(store, chunk, options);
  const sent: Sent[] = [];
  const gone: OutboxEntry[] = [];
  for (const entry of chunk) {
    if (entry.op === "delete") {
      sent.push({
        entry,
        write: { table: entry.table, op: "delete", id: entry.id, row: null, baseVersion: entry.baseVersion },
      });
      continue;
    }
    const row = rows.get(entryKey(entry.table, entry.id));
    if (!row) {
      gone.push(entry);
      continue;
    }
    // The server knows `baseVersion`; local intermediate versions never reached it.
    sent.push({
      entry,
      write: {
        table: entry.table,
        op: "upsert",
        id: entry.id,
        row: { ...row, base_version: entry.baseVersion },
      },
    });
  }
  return { sent, gone };
}

/** Records what the server did with a committed batch, in one durable local batch. */
async function recordBatch(
  store: OfflineStore,
  { sent, gone }: Pick<Batch, "sent" | "gone">,
  result: ClientApplyResult,
  totals: Totals,
  parentWaits: number,
  failedAt: string,
  options: CallOptions | undefined,
): Promise<void> {
  const rejected = new Map(result.rejected.map((r) => [entryKey(r.table, r.id), r]));
  totals.sent += sent.length - rejected.size;
  totals.applied += result.applied;
  totals.skipped += result.skipped;
  totals.conflicts += result.conflicts;
  totals.doubleBookings += result.doubleBookings.length;
  await store.batch((batch) => {
    const owner = batch.getRecord<string>(COPY_OWNER, "owner");
    const author = sent[0]?.entry.author;
    for (const found of result.doubleBookings) {
      const notice: DoubleBookingNotice = { ...found, foundAt: failedAt, ...(author && { author }) };
      batch.setRecord(DOUBLE_BOOKINGS, doubleBookingKey(found), notice);
    }
    for (const entry of gone) {
      // Another person's row is put aside for them (a claim began during this drain), not gone.
      if (!isOwn(entry, owner)) continue;
      // Without its row the entry could never be sent, and would keep the outbox from emptying
      // (the router fails back from the device only at 0). The row went with a parent the servers
      // deleted too, or that never reached them; a new local write of the row since is kept.
      const key = entryKey(entry.table, entry.id);
      if (
        batch.getRecord<OutboxEntry>(OUTBOX, key)?.op === "upsert" &&
        batch.get(entry.table, entry.id) === null
      ) {
        batch.setRecord(OUTBOX, key, null);
      }
    }
    for (const { entry, write } of sent) {
      const key = entryKey(entry.table, entry.id);
      const current = batch.getRecord<OutboxEntry>(OUTBOX, key);
      const refusal = rejected.get(key);
      // Deleted here while its upsert was on the server (a delete entry may stand for it: `current`).
      // Looked up only where it matters: not for the common case, an entry accepted as it was sent.
      const deleted = () => entry.op === "upsert" && batch.get(entry.table, entry.id) === null;
      if (refusal && deleted()) {
        // The server does not have this version and the person deleted the row: nothing to review.
        // A dead letter of it could never be sent again (no row); a pending delete of the server's
        // version stays, since the server still holds that version.
      } else if (refusal && current && isMissingParent(refusal) && (current.parentWaits ?? 0) < parentWaits) {
        totals.deferred++;
        batch.setRecord(OUTBOX, key, { ...current, parentWaits: (current.parentWaits ?? 0) + 1 });
      } else if (refusal) {
        totals.deadLettered++;
        const letter: DeadLetter = { ...entry, code: refusal.code, message: refusal.message, failedAt };
        batch.setRecord(DEAD_LETTERS, key, letter);
        batch.setRecord(OUTBOX, key, null);
      } else if (current && current.op === entry.op && current.version === entry.version) {
        batch.setRecord(OUTBOX, key, null);
      } else if (current) {
        // Edited again while in flight: the server now knows the version that was sent.
        const known = (write.row?.version as string | undefined) ?? current.baseVersion;
        batch.setRecord(OUTBOX, key, { ...current, baseVersion: known });
      } else if (deleted()) {
        // Created offline and deleted while its insert was on the server: the deletion left no
        // entry (nothing had been sent yet), but the server now holds the row.
        const removal: OutboxEntry = {
          table: entry.table,
          id: entry.id,
          op: "delete",
          baseVersion: write.row?.version as string,
          version: null,
          since: entry.since,
          ...(entry.author && { author: entry.author }),
        };
        batch.setRecord(OUTBOX, key, removal);
      }
    }
  }, options);
}

/**
 * Sends the outbox to a server through `cv_client_apply`, batch by batch, parents first. Each
 * batch's entries leave the outbox only after the server committed it (one durable local batch
 * per server batch); a crash in between resends them, and the server skips rows it already holds
 * at that version, so draining is idempotent and resumes where it stopped. A write refused for
 * good moves to the dead-letter list and the rest go on. A row deleted on the PC while its upsert
 * was on the server is deleted there by a later drain if the server took the upsert; if it refused
 * it, no dead letter is kept (a delete of a version the server held before still goes). An upsert
 * whose row left the local file without a delete (a cascade) has nothing to send and leaves the
 * outbox. One batch is on the server at a time, in order; while it is there, the PC reads the next
 * batch's rows and records the previous one, so the server does not wait for the PC's disk
 * between batches.
 *
 * @throws CvError `unavailable`/`timeout` when the server stops answering (what was committed
 *   stays committed and out of the outbox; the rest is sent next time).
 */
export async function drainOutbox(
  store: OfflineStore,
  applier: ClientApplier,
  limits: {
    readonly batchSize: number;
    readonly parentWaits: number;
    /** False once another person began to claim the copy: no batch is sent after that. */
    readonly stillTheirs?: () => boolean;
  },
  now: () => Date,
  options?: DrainOptions,
): Promise<DrainReport> {
  const { batchSize, parentWaits, stillTheirs = () => true } = limits;
  // Whose entries: the owner's as the drain begins, also in its report if a claim begins meanwhile.
  const owner = await copyOwner(store, options);
  const entries = (await entriesOf(store, owner, OUTBOX, options)).sort(drainOrder);
  const totals: Totals = {
    sent: 0,
    applied: 0,
    skipped: 0,
    conflicts: 0,
    doubleBookings: 0,
    deadLettered: 0,
    deferred: 0,
  };
  // The PC's work between two calls (reading a batch's rows and checking them, recording what
  // the server did with the one before) runs while the server works: each starts a turn after the
  // call it would otherwise hold back.
  const prepare = async (start: number): Promise<Batch> => {
    if (start > 0) await nextTurn();
    const { sent, gone } =
      start < entries.length
        ? await batchWrites(store, entries.slice(start, start + batchSize), options)
        : { sent: [], gone: [] };
    return { sent, gone, prepared: applier.prepare(sent.map((s) => s.write)) };
  };
  let recorded: Promise<void> = Promise.resolve();
  let next = handled(prepare(0));
  try {
    for (let start = 0; start < entries.length; start += batchSize) {
      const { sent, gone, prepared } = await next;
      // The session the applier sends with is about to be another person's.
      if (!stillTheirs()) break;
      const applying = sent.length > 0 ? handled(applier.apply(prepared, options)) : undefined;
      next = handled(prepare(start + batchSize));
      // The previous batch is recorded before this one is, and before a failure of this one is thrown.
      await recorded;
      if (applying === undefined && gone.length === 0) continue;
      const result = (await applying) ?? NOTHING_SENT;
      const done = Math.min(entries.length, start + batchSize);
      const failedAt = now().toISOString();
      recorded = handled(
        nextTurn()
          .then(() => recordBatch(store, { sent, gone }, result, totals, parentWaits, failedAt, options))
          .then(() => options?.onProgress?.({ done, total: entries.length })),
      );
    }
  } finally {
    // Whatever fails, the batch the server committed before it is recorded first.
    await recorded.catch(() => {});
  }
  await recorded;
  const remaining = (await entriesOf(store, owner, OUTBOX, options)).length;
  return { ...totals, remaining };
}

/** A drain failure as the status shows it: the code and message, never a row. */
export function drainFailure(error: unknown): CvError {
  return isCvError(error)
    ? error
    : new CvError("unknown", "[offline] draining the offline outbox failed unexpectedly", {
        cause: error,
      });
}
