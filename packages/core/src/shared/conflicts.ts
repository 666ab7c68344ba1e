import type { TableName } from "../tables/table-names.js";

/** A concurrent edit and how it was settled. `null` rows are deletions. */
export interface SyncConflict {
  readonly id: string;
  readonly table: TableName;
  readonly rowId: string;
  /** The row on the node that recorded the conflict. */
  readonly localRow: Readonly<Record<string, unknown>> | null;
  /** The row that arrived from the peer. */
  readonly remoteRow: Readonly<Record<string, unknown>> | null;
  readonly localVersion: string | null;
  readonly remoteVersion: string | null;
  readonly localHlc: string | null;
  readonly remoteHlc: string | null;
  readonly localOrigin: string | null;
  readonly remoteOrigin: string | null;
  readonly winner: "local" | "remote" | "merged";
  readonly policy: string;
  readonly reason: string;
  /** Columns both sides changed, when known. */
  readonly columns: readonly string[] | null;
  readonly status: "open" | "resolved";
  readonly resolvedAt: string | null;
  readonly resolvedBy: string | null;
  readonly createdAt: string;
}

/** A reviewer's decision: keep one side's row (relative to the node that recorded it), or a merged row. */
export type ConflictResolution =
  | { readonly keep: "local" | "remote" }
  | { readonly merged: Readonly<Record<string, unknown>> };
