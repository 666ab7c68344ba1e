import { randomUUID } from "node:crypto";
import { type CallOptions, CvError, SYNCED_TABLES, type TableName, tables } from "@centrovision/core";
import type { SyncPeer } from "./sync-peer.js";
import { type ApplyResult, START_CURSOR, type SyncChange } from "./sync-types.js";

/** A row some node wrote, as the writer got it back (the failover router's journal entries fit). */
export interface CarriedWrite {
  readonly table: TableName;
  readonly op: "upsert" | "delete";
  readonly id: string;
  /** The stored row after the write, with its `version` and `base_version`; null for a delete. */
  readonly row: Readonly<Record<string, unknown>> | null;
}

export interface ApplyRowsResult extends ApplyResult {
  /** Writes not carried: deletes (see {@link applyRows}). */
  readonly ignored: number;
}

/**
 * An HLC older than any real one: a carried row never wins a concurrent edit on its strength.
 * Its real change, with its real HLC, arrives with the next pull and settles it there.
 */
function carryHlc(origin: string): string {
  return `${"0".repeat(15)}.${"0".repeat(10)}.${origin}`;
}

/**
 * Makes rows written on node `origin` (the cloud) present on `target` (the clinic server) ahead
 * of the regular pull: read-your-writes for the failover router, which carries a PC's last
 * cloud writes when it switches to the clinic server.
 *
 * Never a blind overwrite: the rows go through `cv_sync_apply` as changes of `origin` with their
 * own versions, so the target writes a row only when it lacks it or holds exactly the version it
 * replaced (a fast-forward). A row the target holds a newer or concurrent version of is left as it
 * is (or recorded as a conflict, both versions kept) and the regular sync settles it. When the
 * cloud's real change arrives later it carries the same version and is a no-op.
 *
 * Deletes are not carried: the journal does not say which version was deleted, and deleting a row
 * whose version is unknown would be the blind write this path exists to avoid.
 *
 * The batch travels on a channel of its own (a throw-away peer id, forgotten afterwards), so the
 * cursor the target keeps for `origin` is untouched.
 */
export async function applyRows(
  target: SyncPeer,
  origin: string,
  writes: readonly CarriedWrite[],
  options?: CallOptions,
): Promise<ApplyRowsResult> {
  const upserts = writes.filter((write) => write.op === "upsert" && write.row !== null);
  const ignored = writes.length - upserts.length;
  if (upserts.length === 0) return { status: "applied", applied: 0, skipped: 0, conflicts: 0, ignored };
  const changes = upserts.map((write, index): SyncChange => {
    if (!SYNCED_TABLES.includes(write.table)) {
      throw new CvError("invalid_input", `[sync-engine] ${write.table} is not a synced table`);
    }
    const parsed = tables[write.table].rowSchema.safeParse(write.row);
    if (!parsed.success || parsed.data.id !== write.id.toLowerCase()) {
      throw new CvError(
        "invalid_input",
        `[sync-engine] a carried ${write.table} row is not a stored row of that table`,
        {
          table: write.table,
        },
      );
    }
    const row = parsed.data as Readonly<Record<string, unknown>> & {
      version: string;
      base_version: string | null;
    };
    return {
      table: write.table,
      row_id: row.id as string,
      op: "upsert",
      row,
      version: row.version,
      base_version: row.base_version,
      origin,
      hlc: carryHlc(origin),
      changed_columns: null,
      txid: 0,
      seq: index + 1,
    };
  });
  const node = await target.node(options);
  const channel = randomUUID();
  try {
    const result = await target.apply(
      {
        source: {
          nodeId: channel,
          nodeName: "read-your-writes carry",
          epoch: channel,
          fingerprint: node.fingerprint,
        },
        expected: START_CURSOR,
        cursor: { txid: 0, seq: 1 },
        changes,
      },
      options,
    );
    return { ...result, ignored };
  } finally {
    await target.resetPeer(channel, options).catch(() => {});
  }
}
