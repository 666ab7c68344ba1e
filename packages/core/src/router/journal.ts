import type { TableName } from "../tables/index.js";

/** A write this PC made, as the tier that took it returned it. */
export interface JournalEntry {
  /** The tier that took it: "cloud" or "clinic" (the device's own writes need no carrying). */
  readonly tier: "cloud" | "clinic";
  readonly table: TableName;
  readonly op: "upsert" | "delete";
  readonly id: string;
  /** The stored row after the write; null for a delete. */
  readonly row: Readonly<Record<string, unknown>> | null;
  /**
   * For a delete made with `expectedVersion`: the version deleted, which a carry or a lift deletes
   * on a server (a row changed there since is left for the sync). A delete without it reaches no
   * server that way: none could tell which version it meant.
   */
  readonly baseVersion?: string;
  readonly at: number;
}

/**
 * The last `size` writes made within `ttlMs`, oldest first. Kept for
 * read-your-writes: at failover they are made present on the next tier, so a
 * receptionist sees the appointment she created seconds before the outage, on
 * the clinic server or on this PC's own copy.
 */
export class WriteJournal {
  private entries: JournalEntry[] = [];

  constructor(
    private readonly size: number,
    private readonly ttlMs: number,
  ) {}

  add(entry: JournalEntry): void {
    if (this.size === 0) return;
    this.entries.push(entry);
    if (this.entries.length > this.size) this.entries.splice(0, this.entries.length - this.size);
  }

  clear(): void {
    this.entries = [];
  }

  /** Entries still within the TTL; the latest write per row only, in write order. */
  recent(now: number): JournalEntry[] {
    this.entries = this.entries.filter((entry) => now - entry.at <= this.ttlMs);
    const latest = new Map<string, JournalEntry>();
    for (const entry of this.entries) {
      const key = `${entry.table}:${entry.id}`;
      latest.delete(key);
      latest.set(key, entry);
    }
    return [...latest.values()];
  }
}

/** A write whose outcome on a tier is unknown: the tier stopped answering while it was in flight. */
export interface UnknownWrite {
  readonly tier: string;
  readonly table: TableName;
  readonly id: string;
  /** The version the router assigned; finding it on the tier proves the write landed. */
  readonly version: string | null;
  readonly op: "upsert" | "delete";
  readonly at: number;
}

/** What reconciling an unknown write found once its tier answered again. */
export type UnknownWriteOutcome = "landed" | "not_landed" | "superseded";
