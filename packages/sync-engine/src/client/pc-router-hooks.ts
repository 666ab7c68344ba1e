import type { RouterHooks, Tier } from "@centrovision/core";
import type { ClientApplier, ClientApplyResult } from "./client-apply.js";

export interface PcRouterHooksOptions {
  /** The clinic server, reached with this PC's `centrovision_app` login (a `createClientApplier`). */
  clinic: ClientApplier;
  /** Writes this PC queued while it worked on its own SQLite file (the offline outbox). Default: none. */
  localPending?: () => Promise<number>;
  /** For the status icon: ISO time of the last successful sync, e.g. from the daemon's status. */
  lastSyncAt?: () => string | null;
  isSyncing?: () => boolean;
  /** Deadline of a carry or of a pending-count query. Default 3 000 ms. */
  timeoutMs?: number;
  /** What a read-your-writes carry did (counts only, never rows): for metrics. */
  onCarried?: (result: ClientApplyResult) => void;
}

/**
 * The failover router's hooks on a PC, which holds no sync role: the PC's last cloud writes are
 * carried onto the clinic server at failover through `cv_client_apply` in `carry` mode (version
 * checked; a row the clinic changed meanwhile is left for the sync to settle), and failback from
 * the clinic server waits for its `cv_client_pending` count to reach 0, i.e. until the sync
 * engine has pushed to the cloud what was written there during the outage (up to the moment the
 * router began to wait: writes that keep coming meanwhile follow with the next sync cycle).
 *
 * Carrying onto the PC's own file (cloud → device, when both servers are gone at once) is not
 * done: the journal's rows are already on the cloud, and the PC reads them there again on failback.
 */
export function createPcRouterHooks(options: PcRouterHooksOptions): RouterHooks {
  const timeoutMs = options.timeoutMs ?? 3_000;
  // The clinic's log position when the router began to wait for a failback: what counts then.
  let watermark: { since: number; upTo: string } | null = null;
  return {
    async pendingChanges(tier: Tier, failback) {
      if (tier === "clinic") {
        if (!failback) return options.clinic.pendingUp({ timeoutMs });
        if (watermark?.since !== failback.since) {
          watermark = { since: failback.since, upTo: await options.clinic.logPosition({ timeoutMs }) };
        }
        return options.clinic.pendingUp({ timeoutMs, upTo: watermark.upTo });
      }
      if (tier === "device") return options.localPending ? options.localPending() : 0;
      return 0;
    },
    async carryWrites(from, to, writes) {
      if (from !== "cloud" || to !== "clinic" || writes.length === 0) return;
      const result = await options.clinic.apply(writes, { mode: "carry", timeoutMs });
      options.onCarried?.(result);
    },
    ...(options.lastSyncAt && { lastSyncAt: options.lastSyncAt }),
    ...(options.isSyncing && { isSyncing: options.isSyncing }),
  };
}
