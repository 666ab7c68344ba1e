import { type CallOptions, CvError, SYNCED_TABLES, type TableName } from "@centrovision/core";
import type { DoubleBooking } from "../client/client-apply.js";
import type { OfflineStore, StoreBatch } from "./offline-store.js";

/** Record collections in the local file; names, never patient data. */
export const OUTBOX = "cv-outbox";
export const DEAD_LETTERS = "cv-dead-letters";
export const DOUBLE_BOOKINGS = "cv-double-bookings";
/** Whose copy the file holds (`claimCopy`), under the key "owner". */
export const COPY_OWNER = "cv-cache-owner";
/** In {@link COPY_OWNER}: who a claim under way makes the copy's owner. Offline writes wait for it. */
export const CLAIMING = "claiming";
/**
 * Rows with a person's unsent edits, and the parents they need, put aside while someone else's
 * copy is in the file (`claimCopy`): the other person never reads them, and they come back when
 * their author signs in here again. Keyed by {@link heldRowKey}.
 */
export const HELD_ROWS = "cv-held-rows";

/** A row put aside for its author (see {@link HELD_ROWS}), as the author's copy held it. */
export interface HeldRow {
  readonly author: string;
  readonly table: TableName;
  readonly row: Readonly<Record<string, unknown>> & { readonly id: string };
}

/** The `constraint` of the `conflict` an edit of a row with another person's unsent edit meets. */
export const OTHER_PERSONS_EDIT = "cv_offline_other_persons_edit";

export const heldRowKey = (author: string, table: TableName, id: string) => `${author}\n${table}:${id}`;

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
   * person's session: it waits while someone else works on this PC. Absent: written while the file
   * had no owner; the next claim makes it the leaving person's, or the first owner's.
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

/** Why work begun for one person stopped: another person's claim of the copy began meanwhile. */
export const handedOver = (what: string) =>
  new CvError(
    "conflict",
    `[offline] another person began to sign in on this PC during ${what}, which stopped: the copy is theirs now`,
  );

/** Whether `owner` may send the entry: theirs, or written before the file had an owner. */
export const isOwn = (entry: Pick<OutboxEntry, "author">, owner: string | null) =>
  entry.author === undefined || entry.author === owner;

/** The entries of `collection` (the outbox, or the dead letters) `owner` may send. */
export async function entriesOf<T extends OutboxEntry = OutboxEntry>(
  store: Pick<OfflineStore, "records">,
  owner: string | null,
  collection: typeof OUTBOX | typeof DEAD_LETTERS = OUTBOX,
  options?: CallOptions,
): Promise<T[]> {
  return (await store.records<T>(collection, options))
    .map((r) => r.value)
    .filter((entry) => isOwn(entry, owner));
}

/** The entries of `collection` (the outbox, or the dead letters) the copy's owner may send. */
export async function ownEntries<T extends OutboxEntry = OutboxEntry>(
  store: Pick<OfflineStore, "records">,
  options?: CallOptions,
  collection: typeof OUTBOX | typeof DEAD_LETTERS = OUTBOX,
): Promise<T[]> {
  return entriesOf<T>(store, await copyOwner(store, options), collection, options);
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
  /** Whose booking it was: listed for that person (absent: anyone's). */
  readonly author?: string;
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
  if (batch.getRecord(COPY_OWNER, CLAIMING) !== null) {
    throw new CvError(
      "conflict",
      "[offline] a sign-in is changing whose copy this PC holds: the write was not made; make it once the sign-in ends",
    );
  }
  const author = batch.getRecord<string>(COPY_OWNER, "owner");
  for (const change of batch.changes()) {
    if (!SYNCED.has(change.table)) continue;
    const key = entryKey(change.table, change.id);
    const earlier =
      batch.getRecord<OutboxEntry>(OUTBOX, key) ?? batch.getRecord<DeadLetter>(DEAD_LETTERS, key);
    // One entry per row: folding this edit into another person's would send theirs as this one's.
    if (earlier && !isOwn(earlier, author)) {
      throw new CvError(
        "conflict",
        `[offline] ${change.table} ${change.id} has an edit another person made on this PC that no server has yet; it is sent when they sign in here again. Make this change once this PC reaches a server`,
        { constraint: OTHER_PERSONS_EDIT, table: change.table },
      );
    }
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
