import {
  type CallOptions,
  type ConnectionStatus,
  CvError,
  type DataSource,
  parseConfig,
  type Tier,
} from "@centrovision/core";
import { combineLatest, exhaustMap, type Observable, type Subscription, timer } from "rxjs";
import type { ClientApplier } from "../client/client-apply.js";
import { claimCache, type RefreshReport, refreshCache } from "./cache-refresh.js";
import { type DrainOptions, type DrainReport, drainFailure, drainOutbox } from "./drain.js";
import { type OfflineTierOptions, offlineTierOptionsSchema } from "./offline-options.js";
import { createOfflineSource } from "./offline-source.js";
import { DEAD_LETTERS, type DeadLetter, OUTBOX, type OutboxEntry } from "./outbox.js";

/** The PC's offline tier: the router's last source, its outbox, dead letters and cache. */
export interface OfflineTier {
  /** The router's third tier. Writes are durable (fsync'd) with their outbox entry when they resolve. */
  readonly source: DataSource;
  /** Local writes not yet accepted by a server (dead letters excluded): the status's "(N pendientes)". */
  pendingCount(options?: CallOptions): Promise<number>;
  /** The outbox, in the order rows were first changed. */
  pending(options?: CallOptions): Promise<OutboxEntry[]>;
  /** Writes a server refused for good, with its reason, for the app to show. */
  deadLetters(options?: CallOptions): Promise<DeadLetter[]>;
  /** Puts a dead letter back in the outbox (after the cause was fixed on the server). */
  retryDeadLetter(table: string, id: string, options?: CallOptions): Promise<void>;
  /**
   * Gives up a dead letter: the local edit is dropped and the row is copied again from `from`
   * (or removed locally when `from` does not have it).
   */
  discardDeadLetter(table: string, id: string, from: DataSource, options?: CallOptions): Promise<void>;
  /** Sends the outbox to a server (see `drainOutbox`). Concurrent calls share one run. */
  drain(applier: ClientApplier, options?: DrainOptions): Promise<DrainReport>;
  /** Refreshes the local copy from `from` (normally the router while it is on a better tier). */
  refresh(from: DataSource, options?: CallOptions & { full?: boolean }): Promise<RefreshReport>;
  /**
   * Makes the local copy this person's (any string that names them): if it held another person's
   * rows, they are removed — all but rows with pending or dead-lettered edits — before the next
   * refresh fills it as `owner`. True when rows of someone else were cleared.
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
  /** Closes the local file (snapshotting it). */
  close(): Promise<void>;
}

/**
 * Builds the offline tier over the PC's encrypted SQLite source. The source is owned from now
 * on: write through `tier.source`, never through the SQLite source directly, or the outbox would
 * miss the write.
 */
export function createOfflineTier(options: OfflineTierOptions): OfflineTier {
  const config = parseConfig("[sync-engine] invalid offline tier options", offlineTierOptionsSchema, options);
  const { store } = config;
  const source = createOfflineSource(store, config.id, config.now);
  let draining: Promise<DrainReport> | null = null;

  const key = (table: string, id: string) => `${table}:${id.toLowerCase()}`;
  async function deadLetter(table: string, id: string, o?: CallOptions): Promise<DeadLetter> {
    const letters = await store.records<DeadLetter>(DEAD_LETTERS, o);
    const found = letters.find((r) => r.key === key(table, id));
    if (!found) {
      throw new CvError(
        "not_found",
        `[sync-engine] no dead letter for ${table} ${id}; list them with deadLetters()`,
      );
    }
    return found.value;
  }

  const tier: OfflineTier = {
    source,
    pendingCount: async (o) => (await store.records(OUTBOX, o)).length,
    pending: async (o) => (await store.records<OutboxEntry>(OUTBOX, o)).map((r) => r.value),
    deadLetters: async (o) => (await store.records<DeadLetter>(DEAD_LETTERS, o)).map((r) => r.value),
    async retryDeadLetter(table, id, o) {
      const {
        code: _code,
        message: _message,
        failedAt: _failedAt,
        parentWaits: _parentWaits,
        ...entry
      } = await deadLetter(table, id, o);
      await store.batch((batch) => {
        batch.setRecord(DEAD_LETTERS, key(table, id), null);
        batch.setRecord(OUTBOX, key(table, id), entry);
      }, o);
    },
    async discardDeadLetter(table, id, from, o) {
      const letter = await deadLetter(table, id, o);
      const server = await from.table(letter.table).get(letter.id, o);
      await store.batch((batch) => {
        batch.setRecord(DEAD_LETTERS, key(table, id), null);
        if (server) batch.putVerbatim(letter.table, server);
        else if (batch.get(letter.table, letter.id)) batch.deleteVerbatim(letter.table, letter.id);
      }, o);
    },
    drain(applier, o) {
      draining ??= drainOutbox(
        store,
        applier,
        { batchSize: config.drainBatchSize, parentWaits: config.parentWaits },
        config.now,
        o,
      ).finally(() => {
        draining = null;
      });
      return draining;
    },
    refresh: (from, o) => refreshCache(store, from, config, o?.full ?? false, o),
    claimCopy: (owner, o) => claimCache(store, owner, config.pageSize, o),
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
