import type { RouterHooks, Tier } from "@centrovision/core";
import type { AbsorbReport, OfflineTier } from "../offline/offline-tier.js";
import type { ClientApplier, ClientApplyResult } from "./client-apply.js";

export interface PcRouterHooksOptions {
  /**
   * The clinic server, reached with this PC's `centrovision_app` login (a `createClientApplier`).
   * Without one (a PC configured for the cloud and its own copy only), nothing is carried there.
   */
  clinic?: ClientApplier;
  /**
   * The cloud, reached as the signed-in person (a `createClientApplier` over supabase-js). A write
   * the clinic server or this PC's copy took while the router stayed on the cloud (a call there
   * failed) is brought there at once through it, so the cloud's next answer holds it. Without one,
   * such a write reaches the cloud with the sync (the clinic server's) or the outbox's next drain.
   */
  cloud?: ClientApplier;
  /** Writes this PC queued while it worked on its own SQLite file (the offline outbox). Default: none. */
  localPending?: () => Promise<number>;
  /**
   * This PC's offline copy: at a switch down to it, this PC's recent writes the servers took are
   * stored there, so the offline agenda shows what was booked up to the last answer.
   */
  device?: Pick<OfflineTier, "absorb" | "drain">;
  /** For the status icon: ISO time of the last successful sync, e.g. from the daemon's status. */
  lastSyncAt?: () => string | null;
  isSyncing?: () => boolean;
  /** Deadline of a carry or of a pending-count query. Default 3 000 ms. */
  timeoutMs?: number;
  /** What a read-your-writes carry did (counts only, never rows): for metrics. */
  onCarried?: (result: ClientApplyResult) => void;
  /** What a carry onto the offline copy did (counts only). */
  onAbsorbed?: (report: AbsorbReport) => void;
}

/**
 * The failover router's hooks on a PC, which holds no sync role: the PC's last cloud writes are
 * carried onto the clinic server at failover through `cv_client_apply` in `carry` mode (version
 * checked; a row the clinic changed meanwhile is left for the sync to settle); at a switch down to
 * the PC's own copy, its last writes on either server are stored there (`device`); failback from
 * the clinic server waits for its `cv_client_pending` count to reach 0, i.e. until the sync
 * engine has pushed to the cloud what was written there during the outage (up to the moment the
 * router began to wait: writes that keep coming meanwhile follow with the next sync cycle). A write
 * a lower tier took while the router stayed up (a call there failed) is lifted to the router's tier:
 * the clinic server's carried to the cloud (`carry` mode, as at failover), this PC's outbox drained.
 */
export function createPcRouterHooks(options: PcRouterHooksOptions): RouterHooks {
  const timeoutMs = options.timeoutMs ?? 3_000;
  // The clinic's log position when the router began to wait for a failback: what counts then.
  let watermark: { since: number; upTo: string } | null = null;
  return {
    async pendingChanges(tier: Tier, failback) {
      const clinic = options.clinic;
      if (tier === "clinic" && clinic) {
        if (!failback) return clinic.pendingUp({ timeoutMs });
        if (watermark?.since !== failback.since) {
          watermark = { since: failback.since, upTo: await clinic.logPosition({ timeoutMs }) };
        }
        return clinic.pendingUp({ timeoutMs, upTo: watermark.upTo });
      }
      if (tier === "device") return options.localPending ? options.localPending() : 0;
      return 0;
    },
    async carryWrites(_from, to, writes) {
      if (writes.length === 0) return;
      if (to === "clinic" && options.clinic) {
        const result = await options.clinic.apply(writes, { mode: "carry", timeoutMs });
        options.onCarried?.(result);
      } else if (to === "device" && options.device) {
        // Not inside `onAbsorbed?.(…)`: without a callback, the optional call would skip the absorb.
        const report = await options.device.absorb(writes, { timeoutMs });
        options.onAbsorbed?.(report);
      }
    },
    async liftWrites(from, to, writes) {
      const applier = to === "cloud" ? options.cloud : to === "clinic" ? options.clinic : undefined;
      if (!applier) return;
      if (from === "device" && options.device) {
        // A drain already running (the outbox's own) read the outbox before this write: it goes
        // with the next one.
        await options.device.drain(applier, { timeoutMs });
        await options.device.drain(applier, { timeoutMs });
      } else if (from === "clinic" && writes.length > 0) {
        const result = await applier.apply(writes, { mode: "carry", timeoutMs });
        options.onCarried?.(result);
      }
    },
    ...(options.lastSyncAt && { lastSyncAt: options.lastSyncAt }),
    ...(options.isSyncing && { isSyncing: options.isSyncing }),
  };
}
