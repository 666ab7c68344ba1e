import type { TableName } from "./tables/table-names.js";

/** Where a PC is working: the cloud, the clinic server, or its own SQLite file. */
export type ConnectionMode = "supabase" | "local" | "offline";

/** The three tiers, best first. */
export const TIERS = ["cloud", "clinic", "device"] as const;
export type Tier = (typeof TIERS)[number];

export const MODE_OF_TIER: { readonly [K in Tier]: ConnectionMode } = {
  cloud: "supabase",
  clinic: "local",
  device: "offline",
};

/**
 * Health of one tier as the router sees it: `up` serves calls, `suspect` has
 * failed a probe but not enough to switch, `down` is skipped, `unknown` has
 * not been probed yet.
 */
export type TierHealth = "up" | "suspect" | "down" | "unknown";

export interface TierStatus {
  readonly tier: Tier;
  readonly health: TierHealth;
  readonly available: boolean;
  readonly consecutiveFailures: number;
  readonly lastProbeAt: string | null;
  readonly latencyMs: number | null;
  /** Code and message of the last failure, without any row data. */
  readonly lastError: string | null;
}

/** What the status icon and `get_connection_status` show. */
export interface ConnectionStatus {
  readonly mode: ConnectionMode;
  readonly tiers: { readonly [K in Tier]: TierStatus };
  /** Writes made here that have not reached the cloud yet. */
  readonly pendingChanges: number;
  readonly isSyncing: boolean;
  /** ISO time of the last successful sync, or null if none yet. */
  readonly lastSyncAt: string | null;
  /** Why the router is on this tier, in words a clinic's IT person can act on. */
  readonly reason: string;
  /** A tier pinned by hand, or null when the router chooses. */
  readonly pinned: Tier | null;
  readonly changedAt: string;
  /**
   * Rows the PC's offline copy lacks though its person may see them, per table, as its last
   * refresh found them (e.g. the appointment of a patient registered at a branch the person does
   * not see: the copy holds no row without its parents). Set by a backend that keeps such a copy,
   * for screens working on it (mode `offline`); absent or `{}` when it lacks nothing it knows of.
   */
  readonly notInCopy?: Readonly<Partial<Record<TableName, number>>>;
}
