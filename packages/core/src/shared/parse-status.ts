import { CvError } from "../errors.js";
import { type ConnectionMode, type ConnectionStatus, MODE_OF_TIER } from "../status.js";
import { TABLE_NAMES, type TableName } from "../tables/table-names.js";

const MODES: readonly ConnectionMode[] = Object.values(MODE_OF_TIER);

function kind(value: unknown): string {
  return value === null ? "null" : Array.isArray(value) ? "array" : typeof value;
}

/**
 * Checks the fields a UI reads from a status that crossed a transport (IPC, HTTP), so a backend of
 * another version fails loudly instead of showing a wrong icon. Values are never echoed, only
 * types. `origin` names the call in the error, e.g. `[ui-react] get_connection_status`.
 *
 * @throws CvError `invalid_input` listing every problem.
 */
export function parseConnectionStatus(value: unknown, origin: string): ConnectionStatus {
  const problems: string[] = [];
  const record = (typeof value === "object" && value !== null ? value : {}) as Record<string, unknown>;
  if (kind(value) !== "object") problems.push(`expected an object, got ${kind(value)}`);
  else {
    if (typeof record.mode !== "string" || !MODES.includes(record.mode as ConnectionMode)) {
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
    const missing = record.notInCopy;
    if (
      missing !== undefined &&
      (kind(missing) !== "object" ||
        Object.entries(missing as object).some(
          ([table, count]) =>
            !TABLE_NAMES.includes(table as TableName) ||
            typeof count !== "number" ||
            !Number.isInteger(count) ||
            count < 0,
        ))
    ) {
      problems.push("notInCopy must map table names to whole numbers ≥ 0");
    }
    const tiers = record.tiers as Record<string, { available?: unknown } | undefined> | undefined;
    if (typeof tiers?.cloud?.available !== "boolean")
      problems.push("tiers.cloud.available must be a boolean");
  }
  if (problems.length > 0) {
    throw new CvError(
      "invalid_input",
      `${origin} returned an invalid connection status: ${problems.join("; ")}. ` +
        "Check that the backend and the UI come from the same CentroVision version.",
    );
  }
  return value as ConnectionStatus;
}
