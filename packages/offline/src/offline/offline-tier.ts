import {
  type CallOptions,
  type ConnectionStatus,
  CvError,
  type DataSource,
  type JournalEntry,
  parseConfig,
  type Row,
  type TableName,
  type Tier,
} from "@centrovision/core";
import { combineLatest, exhaustMap, type Observable, type Subscription, timer } from "rxjs";
import type { ClientApplier } from "../client/client-apply.js";
import { claimCache, type RefreshReport, refreshCache, unplacedRows } from "./cache-refresh.js";
import { type DrainOptions, type DrainReport, drainFailure, drainOutbox } from "./drain.js";
import { type OfflineTierOptions, offlineTierOptionsSchema } from "./offline-options.js";
import { createOfflineSource } from "./offline-source.js";
import {
  COPY_OWNER,
  copyOwner,
  DEAD_LETTERS,
  type DeadLetter,
  DOUBLE_BOOKINGS,
  type DoubleBookingNotice,
  doubleBookingKey,
  handedOver,
  isOwn,
  OUTBOX,
  type OutboxEntry,
  ownEntries,
} from "./outbox.js";

/** The PC's offline tier: the router's last source, its outbox, dead letters and cache. */
export interface OfflineTier {
  /** The router's third tier. Writes are durable (fsync'd) with their outbox entry when they resolve. */
  readonly source: DataSource;
  /**
   * Local writes not yet accepted by a server (dead letters excluded): the status's "(N pendientes)".
   * The person's whose copy it is: another person's wait for them to sign in on this PC.
   */
  pendingCount(options?: CallOptions): Promise<number>;
  /** The outbox the person may send, in the order rows were first changed. */
  pending(options?: CallOptions): Promise<OutboxEntry[]>;
  /** The person's writes a server refused for good, with its reason, for the app to show. */
  deadLetters(options?: CallOptions): Promise<DeadLetter[]>;
  /** Puts one of the person's dead letters back in the outbox (after the cause was fixed on the server). */
  retryDeadLetter(table: string, id: string, options?: CallOptions): Promise<void>;
  /**
   * Gives up one of the person's dead letters: the local edit is dropped and the row is copied again from `from`
   * (or removed locally when `from` does not have it).
   */
  discardDeadLetter(table: string, id: string, from: DataSource, options?: CallOptions): Promise<void>;
  /**
   * The person's bookings made on this PC that a drain's server found clashing with an appointment
   * made meanwhile (both are in the agenda), oldest first, until a person settles each.
   */
  doubleBookings(options?: CallOptions): Promise<DoubleBookingNotice[]>;
  /** Takes a double booking off the list (the person kept both, or cancelled one). */
  settleDoubleBooking(bookingId: string, otherId: string, options?: CallOptions): Promise<void>;
  /** Sends the outbox to a server (see `drainOutbox`). Concurrent calls share one run. */
  drain(applier: ClientApplier, options?: DrainOptions): Promise<DrainReport>;
  /**
   * Takes rows a server acknowledged to this PC (the router's journal, at a switch down to the
   * device), so the local copy holds this PC's own writes up to the last answer: each is stored
   * as the server returned it, unless this PC has an unsent edit of the row (outbox or dead
   * letter) or the copy holds a newer version. A write made on top of the copy's version (its
   * `base_version`) is newer whatever its `updated_at`; the copy's row is newer when made on top
   * of the write; `updated_at` decides only between unrelated versions. A row whose parent the
   * copy lacks is left out (the next refresh brings both). One durable batch; counts only.
   */
  absorb(writes: readonly JournalEntry[], options?: CallOptions): Promise<AbsorbReport>;
  /** Refreshes the local copy from `from` (normally `router.servers()`: a server, never this copy). */
  refresh(from: DataSource, options?: CallOptions & { full?: boolean }): Promise<RefreshReport>;
  /**
   * Rows the copy lacks though its person may see them, per table, as the last refresh found them
   * (its report's `unplaced`, kept in the file): what a screen working on this copy may be missing,
   * e.g. the appointment of a patient registered at a branch the person does not see. Tables with
   * none are left out; `{}` when the copy lacks nothing it knows of. At most 1,000 a table.
   */
  copyGaps(options?: CallOptions): Promise<Readonly<Partial<Record<TableName, number>>>>;
  /**
   * Other people's writes waiting on this PC, per author: `changes` in their outbox, sent with their
   * own session at their next sign-in here, and `refused` dead letters, which only they may retry
   * or discard. The copy owner's are not counted; `[]` when none. For telling the person signed in
   * whom to ask to sign in here.
   */
  waitingForOthers(
    options?: CallOptions,
  ): Promise<readonly { readonly author: string; readonly changes: number; readonly refused: number }[]>;
  /**
   * Makes the local copy this person's (any string that names them): if it held another person's
   * rows, they are removed before the next refresh fills it as `owner`; the other person's unsent
   * edits, and the rows they need, are put aside until they sign in here again, and this person's
   * come back. True when rows of someone else were cleared. Writes go to the outbox as the owner's,
   * and a drain sends only the owner's: a server stamps whoever's session sends a write as its
   * author, so another person's wait for them. A row with another person's unsent edit refuses
   * an edit here (`conflict`): one entry per row would send both as one person's. A drain, refresh,
   * absorb, or dead letter's retry or discard begun before the claim does nothing more once it
   * begins (the claim waits for it); one begun during the claim waits for it to end, and an offline
   * write during it is refused (`conflict`). The same person claiming again stops none of it.
   */
  claimCopy(owner: string, options?: CallOptions): Promise<boolean>;
  /** For `RouterHooks.pendingChanges`: the outbox size on `device`, `fallback` elsewhere. */
  pendingChanges(tier: Tier, fallback?: (tier: Tier) => Promise<number>): Promise<number>;
  /**
   * Drains by itself: on every status and every `intervalMs` (default 2 s), when a better tier is
   * available and the outbox is not empty, the outbox goes to that tier's applier, the cloud
   * first. Runs never overlap. The router leaves the device tier once the count reaches 0.
   * Unsubscribe to stop.
   */
  autoDrain(
    status$: Observable<ConnectionStatus>,
    appliers: { readonly cloud?: ClientApplier; readonly clinic?: ClientApplier },
    options?: { readonly intervalMs?: number; readonly onError?: (error: CvError) => void },
  ): Subscription;
  /**
   * This PC's own sync, for the status icon: `isSyncing` while the outbox drains or the copy is
   * refreshed; `lastSyncAt` when either last finished well (the copy then matched a server, or
   * every local write had reached one). Null until then.
   */
  syncState(): { readonly isSyncing: boolean; readonly lastSyncAt: string | null };
  /** Closes the local file (snapshotting it). */
  close(): Promise<void>;
}

/** What {@link OfflineTier.absorb} did with the rows it was given. */
export interface AbsorbReport {
  readonly stored: number;
  /** Already there, older than the copy's, or edited on this PC and not yet sent. */
  readonly kept: number;
  /** Refused by the copy (a parent it does not hold). */
  readonly left: number;
}

/**
 * Whether the copy takes a write a server acknowledged to this PC over the row it holds. Versions
 * of one lineage are ordered by it, whatever the clocks of the servers that stamped them (up to the
 * allowed skew apart): a write made on top of the copy's row is taken even when its server's clock
 * stamped it earlier, or read-your-writes would break, and a copy's row made on top of the write is
 * kept. `updated_at` decides only between unrelated versions.
 */
function takes(local: Row<TableName> | null, row: Readonly<Record<string, unknown>> | null): boolean {
  if (row === null) return local !== null;
  if (local === null) return true;
  if (local.version === row.version || local.base_version === row.version) return false;
  return row.base_version === local.version || local.updated_at <= String(row.updated_at);
}

/**
 * Builds the offline tier over the PC's encrypted SQLite source. The source is owned from now
 * on: write through `tier.source`, never through the SQLite source directly, or the outbox would
 * miss the write.
 */
export function createOfflineTier(options: OfflineTierOptions): OfflineTier {
  const config = parseConfig("[offline] invalid offline tier options", offlineTierOptionsSchema, options);
  const { store } = config;
  const source = createOfflineSource(store, config.id, config.now);
  let draining: Promise<DrainReport> | null = null;
  let running = 0;
  let lastSyncAt: string | null = null;
  // Rows `absorb` stored, by the number of the absorb: a refresh that began before must neither
  // overwrite them with what it read earlier nor evict them (it did not see them).
  let absorbs = 0;
  const absorbed = new Map<string, number>();
  // Claims of the copy, counted when they begin: a drain, a refresh or an absorb that began before
  // the last one works for the person before it, and stops (its session is about to change, and
  // what it read is not the next person's). One begun after a claim waits for it to end.
  let claims = 0;
  /** Whom the last claim was for: the same person claiming again stops none of their own work. */
  let claimant: string | undefined;
  let claimed: Promise<unknown> = Promise.resolve();
  const working = new Set<Promise<unknown>>();
  /** Runs `work` once the claims begun so far have ended; `stillTheirs` is false once another begins. */
  const afterClaims = <T>(work: (stillTheirs: () => boolean) => Promise<T>): Promise<T> => {
    const at = claims;
    const run = claimed.then(() => work(() => claims === at));
    working.add(run);
    const done = () => working.delete(run);
    run.then(done, done);
    return run;
  };
  /** Counts `work` as this PC syncing; its success is the last sync. */
  const syncing = async <T>(work: () => Promise<T>, done: (result: T) => boolean): Promise<T> => {
    running++;
    try {
      const result = await work();
      if (done(result)) lastSyncAt = config.now().toISOString();
      return result;
    } finally {
      running--;
    }
  };

  const key = (table: string, id: string) => `${table}:${id.toLowerCase()}`;
  async function deadLetter(table: string, id: string, o?: CallOptions): Promise<DeadLetter> {
    const letters = await ownEntries<DeadLetter>(store, o, DEAD_LETTERS);
    const found = letters.find((letter) => key(letter.table, letter.id) === key(table, id));
    if (!found) {
      throw new CvError(
        "not_found",
        `[offline] no dead letter for ${table} ${id}; list them with deadLetters()`,
      );
    }
    return found;
  }

  const tier: OfflineTier = {
    source,
    pendingCount: async (o) => (await ownEntries(store, o)).length,
    pending: (o) => ownEntries(store, o),
    deadLetters: (o) => ownEntries<DeadLetter>(store, o, DEAD_LETTERS),
    retryDeadLetter: (table, id, o) =>
      afterClaims(async (stillTheirs) => {
        const {
          code: _code,
          message: _message,
          failedAt: _failedAt,
          parentWaits: _parentWaits,
          ...entry
        } = await deadLetter(table, id, o);
        await store.batch((batch) => {
          if (!stillTheirs()) throw handedOver("this change to a refused write");
          batch.setRecord(DEAD_LETTERS, key(table, id), null);
          batch.setRecord(OUTBOX, key(table, id), entry);
        }, o);
      }),
    doubleBookings: async (o) => {
      const owner = await copyOwner(store, o);
      return (await store.records<DoubleBookingNotice>(DOUBLE_BOOKINGS, o))
        .map((r) => r.value)
        .filter((notice) => isOwn(notice, owner))
        .sort((a, b) => a.foundAt.localeCompare(b.foundAt));
    },
    async settleDoubleBooking(bookingId, otherId, o) {
      const wanted = doubleBookingKey({ bookingId: bookingId.toLowerCase(), otherId: otherId.toLowerCase() });
      if (!(await tier.doubleBookings(o)).some((notice) => doubleBookingKey(notice) === wanted)) {
        throw new CvError(
          "not_found",
          `[offline] no double booking of ${bookingId} with ${otherId}; list them with doubleBookings()`,
        );
      }
      await store.batch((batch) => batch.setRecord(DOUBLE_BOOKINGS, wanted, null), o);
    },
    discardDeadLetter: (table, id, from, o) =>
      afterClaims(async (stillTheirs) => {
        const letter = await deadLetter(table, id, o);
        const server = await from.table(letter.table).get(letter.id, o);
        await store.batch((batch) => {
          // The server's row was read with this person's session: not for the next one's copy.
          if (!stillTheirs()) throw handedOver("this change to a refused write");
          batch.setRecord(DEAD_LETTERS, key(table, id), null);
          if (server) batch.putVerbatim(letter.table, server);
          else if (batch.get(letter.table, letter.id)) batch.deleteVerbatim(letter.table, letter.id);
        }, o);
      }),
    drain(applier, o) {
      if (draining) return draining;
      const run: Promise<DrainReport> = syncing(
        () =>
          afterClaims((stillTheirs) =>
            drainOutbox(
              store,
              applier,
              { batchSize: config.drainBatchSize, parentWaits: config.parentWaits, stillTheirs },
              config.now,
              o,
            ),
          ),
        (report) => report.remaining === 0,
      ).finally(() => {
        if (draining === run) draining = null;
      });
      draining = run;
      return run;
    },
    async absorb(writes, o) {
      let [stored, kept, left] = [0, 0, 0];
      if (writes.length === 0) return { stored, kept, left };
      const number = ++absorbs;
      // Acknowledged to the person signed in now: not for a copy another person claims meanwhile.
      await afterClaims((stillTheirs) =>
        store.batch((batch) => {
          if (!stillTheirs()) {
            left = writes.length;
            return;
          }
          const owner = batch.getRecord<string>(COPY_OWNER, "owner");
          for (const write of writes) {
            const k = key(write.table, write.id);
            const local = batch.get(write.table, write.id) as Row<TableName> | null;
            // Another person's unsent edit of the row is put aside for them: the copy holds this one's view.
            const edit =
              batch.getRecord<OutboxEntry>(OUTBOX, k) ?? batch.getRecord<OutboxEntry>(DEAD_LETTERS, k);
            const unsent = edit !== null && isOwn(edit, owner);
            if (unsent || !takes(local, write.row)) {
              kept++;
              continue;
            }
            try {
              if (write.row === null) batch.deleteVerbatim(write.table, write.id);
              else batch.putVerbatim(write.table, write.row as Row<TableName>);
              absorbed.set(k, number);
              stored++;
            } catch (error) {
              if (!(error instanceof CvError) || error.code !== "constraint") throw error;
              left++;
            }
          }
        }, o),
      );
      return { stored, kept, left };
    },
    refresh(from, o) {
      const began = absorbs;
      const newer = () => new Set([...absorbed].filter(([, n]) => n > began).map(([k]) => k));
      return syncing(
        () =>
          afterClaims((stillTheirs) =>
            refreshCache(store, from, config, o?.full ?? false, o, newer, stillTheirs),
          ),
        () => {
          // This refresh read the rows absorbed before it began from a server: no longer special.
          for (const [k, n] of absorbed) if (n <= began) absorbed.delete(k);
          return true;
        },
      );
    },
    syncState: () => ({ isSyncing: running > 0, lastSyncAt }),
    copyGaps: (o) => unplacedRows(store, o),
    async waitingForOthers(o) {
      const owner = await copyOwner(store, o);
      const waiting = new Map<string, { author: string; changes: number; refused: number }>();
      for (const [collection, kind] of [
        [OUTBOX, "changes"],
        [DEAD_LETTERS, "refused"],
      ] as const) {
        for (const { value } of await store.records<OutboxEntry>(collection, o)) {
          if (value.author === undefined || isOwn(value, owner)) continue;
          const counts = waiting.get(value.author) ?? { author: value.author, changes: 0, refused: 0 };
          counts[kind]++;
          waiting.set(value.author, counts);
        }
      }
      return [...waiting.values()];
    },
    claimCopy(owner, o) {
      if (owner !== claimant) {
        claims++;
        // A drain asked for from now on is a new one, after the claim: the one running stops.
        draining = null;
      }
      claimant = owner;
      const before = [...working];
      const claim = claimed.then(() =>
        claimCache(store, owner, config.pageSize, o, () => Promise.allSettled(before)),
      );
      claimed = claim.catch(() => {});
      return claim;
    },
    async pendingChanges(which, fallback) {
      if (which === "device") return tier.pendingCount();
      return fallback ? fallback(which) : 0;
    },
    autoDrain(status$, appliers, autoOptions) {
      const target = (status: ConnectionStatus) =>
        status.tiers.cloud.available && appliers.cloud
          ? appliers.cloud
          : status.tiers.clinic.available && appliers.clinic
            ? appliers.clinic
            : null;
      return combineLatest([status$, timer(0, autoOptions?.intervalMs ?? 2_000)])
        .pipe(
          exhaustMap(async ([status]) => {
            const applier = target(status);
            if (!applier || (await tier.pendingCount()) === 0) return;
            await tier.drain(applier).catch((error: unknown) => autoOptions?.onError?.(drainFailure(error)));
          }),
        )
        .subscribe({ error: (error: unknown) => autoOptions?.onError?.(drainFailure(error)) });
    },
    close: () => store.close(),
  };
  return tier;
}
