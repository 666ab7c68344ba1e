import { type ConnectionStatus, MODE_OF_TIER, TIERS, type Tier, type TierStatus } from "../status.js";
import type { TierMonitor } from "./tier-monitor.js";

/** Numbers the apps expose as metrics. */
export interface RouterCounters {
  /** Times the active tier changed. */
  switches: number;
  /** Writes whose outcome on a tier was unknown because it stopped answering mid-call. */
  unknownWrites: number;
  /** Calls that a tier failed and another tier was asked to serve. */
  retriedCalls: number;
  /** Reads also asked of a lower tier because the active one was slow to answer (hedged reads). */
  hedgedReads: number;
  /** Hedged reads the lower tier answered first. */
  hedgesWon: number;
  /** Time spent on each tier, including the current stay. */
  timeInTierMs: { [K in Tier]?: number };
}

export interface StatusInput {
  monitors: readonly TierMonitor[];
  active: number;
  pending: number;
  lastSyncAt: string | null;
  isSyncing: boolean;
  reason: string;
  pinned: Tier | null;
  now: number;
  previous: ConnectionStatus | undefined;
}

function tierStatus(tier: Tier, monitor: TierMonitor | undefined): TierStatus {
  if (!monitor) {
    return {
      tier,
      health: "down",
      available: false,
      consecutiveFailures: 0,
      lastProbeAt: null,
      latencyMs: null,
      lastError: "not configured on this PC",
    };
  }
  const state = monitor.state;
  return {
    tier,
    health: state.health,
    available: state.health !== "down",
    consecutiveFailures: state.consecutiveFailures,
    lastProbeAt: state.lastProbeAt === null ? null : new Date(state.lastProbeAt).toISOString(),
    latencyMs: state.latencyMs,
    lastError: state.lastError,
  };
}

/** The status the icon shows, built from the monitors; `changedAt` moves only when the mode does. */
export function buildStatus(input: StatusInput): ConnectionStatus {
  const mode = MODE_OF_TIER[TIERS[input.active] as Tier];
  const tiers = Object.fromEntries(
    TIERS.map((tier, index) => [tier, tierStatus(tier, input.monitors[index])]),
  ) as ConnectionStatus["tiers"];
  return {
    mode,
    tiers,
    pendingChanges: input.pending,
    isSyncing: input.isSyncing,
    lastSyncAt: input.lastSyncAt,
    reason: input.reason,
    pinned: input.pinned,
    changedAt:
      input.previous && input.previous.mode === mode
        ? input.previous.changedAt
        : new Date(input.now).toISOString(),
  };
}
