import type { ConnectionMode, ConnectionStatus, Tier, TierStatus } from "@centrovision/core";

const TIER_OF_MODE: Record<ConnectionMode, Tier> = { supabase: "cloud", local: "clinic", offline: "device" };

function tier(name: Tier, available: boolean): TierStatus {
  return {
    tier: name,
    health: available ? "up" : "down",
    available,
    consecutiveFailures: available ? 0 : 3,
    lastProbeAt: "2026-11-30T15:00:00.000Z",
    latencyMs: available ? 12 : null,
    lastError: available ? null : "unavailable: connection refused",
  };
}

/** A router status as `get_connection_status` returns it: the tiers above `mode` are down. */
export function makeStatus(mode: ConnectionMode, extra: Partial<ConnectionStatus> = {}): ConnectionStatus {
  const serving = TIER_OF_MODE[mode];
  const order: Tier[] = ["cloud", "clinic", "device"];
  const at = order.indexOf(serving);
  return {
    mode,
    tiers: {
      cloud: tier("cloud", at <= 0),
      clinic: tier("clinic", at <= 1),
      device: tier("device", true),
    },
    pendingChanges: 0,
    isSyncing: false,
    lastSyncAt: "2026-11-30T14:59:30.000Z",
    reason: `serving from ${serving}`,
    pinned: null,
    changedAt: "2026-11-30T15:00:00.000Z",
    ...extra,
  };
}
