import { type CallOptions, CvError, isCvError, SYNCED_TABLES, type TableName } from "@centrovision/core";
import type { ClientApplier, ClientWrite, RejectedWrite } from "../client/client-apply.js";
import type { OfflineStore } from "./offline-store.js";
import {
  DEAD_LETTERS,
  type DeadLetter,
  DOUBLE_BOOKINGS,
  type DoubleBookingNotice,
  doubleBookingKey,
  entryKey,
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
  /** Entries still pending afterwards (changed while draining, or not reached). */
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

/**
 * Sends the outbox to a server through `cv_client_apply`, batch by batch, parents first. Each
 * batch's entries leave the outbox only after the server committed it (one durable local batch
 * per server batch); a crash in between resends them, and the server skips rows it already holds
 * at that version, so draining is idempotent and resumes where it stopped. A write refused for
 * good moves to the dead-letter list and the rest go on.
 *
 * @throws CvError `unavailable`/`timeout` when the server stops answering (what was committed
 *   stays committed and out of the outbox; the rest is sent next time).
 */
export async function drainOutbox(
  store: OfflineStore,
  applier: ClientApplier,
  limits: { readonly batchSize: number; readonly parentWaits: number },
  now: () => Date,
  options?: DrainOptions,
): Promise<DrainReport> {
  const { batchSize, parentWaits } = limits;
  const entries = (await store.records<OutboxEntry>(OUTBOX, options)).map((r) => r.value).sort(drainOrder);
  const totals = {
    sent: 0,
    applied: 0,
    skipped: 0,
    conflicts: 0,
    doubleBookings: 0,
    deadLettered: 0,
    deferred: 0,
  };
  for (let start = 0; start < entries.length; start += batchSize) {
    const chunk = entries.slice(start, start + batchSize);
    const rows = await localRows(store, chunk, options);
    const sent: Sent[] = [];
    for (const entry of chunk) {
      if (entry.op === "delete") {
        sent.push({
          entry,
          write: {
            table: entry.table,
            op: "delete",
            id: entry.id,
            row: null,
            baseVersion: entry.baseVersion,
          },
        });
        continue;
      }
      const row = rows.get(entryKey(entry.table, entry.id));
      if (!row) continue;
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
    if (sent.length === 0) continue;
    const result = await applier.apply(
      sent.map((s) => s.write),
      options,
    );
    const rejected = new Map(result.rejected.map((r) => [entryKey(r.table, r.id), r]));
    const failedAt = now().toISOString();
    totals.sent += sent.length - rejected.size;
    totals.applied += result.applied;
    totals.skipped += result.skipped;
    totals.conflicts += result.conflicts;
    totals.doubleBookings += result.doubleBookings.length;
    await store.batch((batch) => {
      for (const found of result.doubleBookings) {
        const notice: DoubleBookingNotice = { ...found, foundAt: failedAt };
        batch.setRecord(DOUBLE_BOOKINGS, doubleBookingKey(found), notice);
      }
      for (const { entry, write } of sent) {
        const key = entryKey(entry.table, entry.id);
        const current = batch.getRecord<OutboxEntry>(OUTBOX, key);
        const refusal = rejected.get(key);
        if (refusal && current && isMissingParent(refusal) && (current.parentWaits ?? 0) < parentWaits) {
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
        }
      }
    }, options);
    options?.onProgress?.({ done: Math.min(entries.length, start + batchSize), total: entries.length });
  }
  const remaining = (await store.records(OUTBOX, options)).length;
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
