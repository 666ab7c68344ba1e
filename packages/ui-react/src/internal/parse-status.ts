import type { ConnectionMode, ConnectionStatus } from "@centrovision/core";
import { UiError } from "../ui-error.js";

const MODES: readonly string[] = ["supabase", "local", "offline"] satisfies readonly ConnectionMode[];

function kind(value: unknown): string {
  return value === null ? "null" : Array.isArray(value) ? "array" : typeof value;
}

/**
 * Checks the fields the UI reads from a status that crossed a transport, so a backend of another
 * version fails loudly here instead of showing a wrong icon. Values are never echoed, only types.
 */
export function parseConnectionStatus(value: unknown, origin: string): ConnectionStatus {
  const problems: string[] = [];
  const record = (typeof value === "object" && value !== null ? value : {}) as Record<string, unknown>;
  if (kind(value) !== "object") problems.push(`expected an object, got ${kind(value)}`);
  else {
    if (typeof record.mode !== "string" || !MODES.includes(record.mode)) {
      problems.push(`mode must be one of ${MODES.join(", ")}`);
    }
    const pending = record.pendingChanges;
    if (typeof pending !== "number" || !Number.isInteger(pending) || pending < 0) {
      problems.push("pendingChanges must be a whole number ≥ 0");
    }
    if (typeof record.isSyncing !== "boolean") problems.push("isSyncing must be a boolean");
    if (record.lastSyncAt !== null && typeof record.lastSyncAt !== "string") {
      problems.push("lastSyncAt must be an ISO time or null");
    }
    const tiers = record.tiers as Record<string, { available?: unknown } | undefined> | undefined;
    if (typeof tiers?.cloud?.available !== "boolean")
      problems.push("tiers.cloud.available must be a boolean");
  }
  if (problems.length > 0) {
    throw new UiError(
      "invalid_input",
      `[ui-react] ${origin} returned an invalid connection status: ${problems.join("; ")}. ` +
        "Check that the backend and the UI come from the same CentroVision version.",
    );
  }
  return value as ConnectionStatus;
}
