import type { SyncStatus } from "@centrovision/sync-engine";
import type { IdentityStatus } from "./identity-copy.js";

/**
 * What the clinic server is doing, in one word:
 * `syncing` (a cycle runs), `in-sync` (last cycle drained both ways), `offline` (the last cycle
 * could not reach a node: the clinic server keeps serving the PCs and queues), `failing` (another
 * error, see `lastError`), `blocked` (a direction waits for a person), `stopped`.
 */
export type DaemonMode = "syncing" | "in-sync" | "offline" | "failing" | "blocked" | "stopped";

/** `GET /status` and `centrovision-sync status --json`: the engine's status plus the daemon's. */
export interface DaemonStatus extends SyncStatus {
  readonly mode: DaemonMode;
  readonly node: string;
  /** The product version this daemon is (`PRODUCT_VERSION`). */
  readonly version: string;
  readonly pid: number;
  readonly startedAt: string;
  /** The clinic key's registration in the cloud and the copy of the cloud's disabled users. */
  readonly identity: IdentityStatus;
}

export function modeOf(status: SyncStatus): DaemonMode {
  if (status.phase === "stopped") return "stopped";
  if (status.blocked.length > 0) return "blocked";
  if (status.phase !== "idle") return "syncing";
  if (status.consecutiveFailures > 0 && status.lastError) {
    return status.lastError.code === "unavailable" || status.lastError.code === "timeout"
      ? "offline"
      : "failing";
  }
  return "in-sync";
}

/** True when the last cycle drained both ways and nothing is blocked: `/readyz`. */
export function isReady(status: SyncStatus): boolean {
  return status.lastSuccessAt !== null && status.consecutiveFailures === 0 && status.blocked.length === 0;
}
