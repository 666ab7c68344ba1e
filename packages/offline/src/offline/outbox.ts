import { type CallOptions, SYNCED_TABLES, type TableName } from "@centrovision/core";
import type { DoubleBooking } from "../client/client-apply.js";
import type { OfflineStore, StoreBatch } from "./offline-store.js";

/** Record collections in the local file; names, never patient data. */
export const OUTBOX = "cv-outbox";
export const DEAD_LETTERS = "cv-dead-letters";
export const DOUBLE_BOOKINGS = "cv-double-bookings";
/** Whose copy the file holds (`claimCopy`), under the key "owner". */
export const COPY_OWNER = "cv-cache-owner";

/**
 * A row written on this PC while offline and not yet accepted by a server. One entry per row:
 * later edits of the same row fold into it, so the server sees one fast-forward from the version
 * it knows (`baseVersion`) to the PC's latest. The row itself is in the local table (the overlay).
 */
export interface OutboxEntry {
  readonly table: TableName;
  readonly id: string;
  readonly op: "upsert" | "delete";
  /** The version the servers know (null: the row was created offline). */
  readonly baseVersion: string | null;
  /** The local version the entry stands for (null for a delete). */
  readonly version: string | null;
  /** When the row was first changed offline (ISO). */
  readonly since: string;
  /** Drains that found a row it references missing on the server (see `parentWaits`). */
  readonly parentWaits?: number;
  /**
   * Whose copy it was written on (the person signed in). A server takes it only with that
   * person's session: it waits while someone else works on this PC. Absent: written before the
   * file had an owner.
   */
  readonly author?: string;
}

/** The person whose copy the file holds now; null before anyone claimed it. */
export async function copyOwner(
  store: Pick<OfflineStore, "records">,
  options?: CallOptions,
): Promise<string | null> {
  const [owner] = (await store.records<string>(COPY_OWNER, options)).filter((r) => r.key === "owner");
  return owner?.value ?? null;
}

/** The outbox entries `owner` may send: theirs, and those written before the file had an owner. */
export async function ownEntries(
  store: Pick<OfflineStore, "records">,
  options?: CallOptions,
): Promise<OutboxEntry[]> {
  const owner = await copyOwner(store, options);
  return (await store.records<OutboxEntry>(OUTBOX, options))
    .map((r) => r.value)
    .filter((entry) => entry.author === undefined || entry.author === owner);
}

/** A write a server refused for good: kept with the reason until a person retries or discards it. */
export interface DeadLetter extends OutboxEntry {
  readonly code: string;
  /** What the server said, without row values. */
  readonly message: string;
  readonly failedAt: string;
}

/** A double booking a drain's server found, kept until a person keeps both or cancels one. */
export interface DoubleBookingNotice extends DoubleBooking {
  /** When the drain found it (ISO). */
  readonly foundAt: string;
}

export const doubleBookingKey = (notice: Pick<DoubleBooking, "bookingId" | "otherId">) =>
  `${notice.bookingId}:${notice.otherId}`;

export const entryKey = (table: TableName, id: string) => `${table}:${id}`;

const SYNCED = new Set<string>(SYNCED_TABLES);

/**
 * Folds every row the batch changed (cascades included) into the outbox, in the same batch, so
 * the row and its outbox entry are durable together. A row created and deleted offline leaves
 * nothing to send; a new edit of a dead-lettered row takes it back into the outbox (a retry).
 */
export function recordOfflineChanges(batch: StoreBatch, now: string): void {
  const author = batch.getRecord<string>(COPY_OWNER, "owner");
  for (const change of batch.changes()) {
    if (!SYNCED.has(change.table)) continue;
    const key = entryKey(change.table, change.id);
    const earlier =
      batch.getRecord<OutboxEntry>(OUTBOX, key) ?? batch.getRecord<DeadLetter>(DEAD_LETTERS, key);
    batch.setRecord(DEAD_LETTERS, key, null);
    const baseVersion = earlier ? earlier.baseVersion : change.previousVersion;
    if (change.row === null && baseVersion === null) {
      batch.setRecord(OUTBOX, key, null);
      continue;
    }
    const entry: OutboxEntry = {
      table: change.table,
      id: change.id,
      op: change.row === null ? "delete" : "upsert",
      baseVersion,
      version: change.row === null ? null : (change.row.version as string),
      since: earlier?.since ?? now,
      ...(author !== null && { author }),
    };
    batch.setRecord(OUTBOX, key, entry);
  }
}
