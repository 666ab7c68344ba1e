import type { CallOptions } from "./deadline.js";
import type { Repository } from "./repository.js";
import type { TableName } from "./tables/index.js";

export type SourceKind = "memory" | "supabase" | "postgres" | "sqlite" | "router";

/** What a source can do, as data: read by the router and by the contract suite. */
export interface Capabilities {
  /** `upsertMany` is one real transaction. */
  readonly transactions: boolean;
  /** The source records changes for the sync engine (change log + cursor). */
  readonly changeFeed: boolean;
  /** An acknowledged write survives a crash of this process. */
  readonly durable: boolean;
  /** Rows visible depend on the signed-in user (row-level security). */
  readonly rowLevelSecurity: boolean;
}

export interface ProbeResult {
  /** Round-trip time of the probe. */
  readonly latencyMs: number;
}

/**
 * One place rows live: Supabase, the clinic server, a local SQLite file, memory,
 * or the router over them. Every call has a deadline (`CallOptions.timeoutMs`,
 * else the source's default) and never retries on its own.
 */
export interface DataSource {
  readonly id: string;
  readonly kind: SourceKind;
  readonly capabilities: Capabilities;
  /**
   * Proves the database itself answers (not just a proxy in front of it).
   * Resolves with the latency, or rejects with `unavailable`/`timeout` within
   * the deadline.
   */
  probe(options?: CallOptions): Promise<ProbeResult>;
  table<T extends TableName>(name: T): Repository<T>;
  /** Releases connections and timers. Later calls reject with `unavailable`. Idempotent. */
  close(): Promise<void>;
}
