import type { SchedulerLike } from "rxjs";
import * as z from "zod";
import { parseOptions } from "./internal/options.js";
import type { SyncPeer } from "./sync-peer.js";

const ms = (min: number, fallback: number) => z.int().min(min).default(fallback);

/** The engine's numbers, with the defaults a clinic runs on. */
export const syncEngineConfigSchema = z
  .object({
    /** Pause between cycles that succeeded. The daemon allows down to ~1 s. */
    intervalMs: ms(50, 30_000),
    /**
     * Least time between two cycles started early by a peer's `changes$` (a write on the clinic
     * server): while changes keep coming, a cycle at most this often instead of back to back.
     * Never more than `intervalMs`.
     */
    wakeGapMs: ms(0, 1_000),
    /**
     * Pause between cycles while both peers' change feeds are connected (`SyncPeer.listening`):
     * every change then starts a cycle by itself, and polling only catches a wake-up lost on the
     * way. A feed that drops starts a cycle, and the engine polls every `intervalMs` until it is
     * back. Never less than `intervalMs`.
     */
    quietIntervalMs: ms(50, 10_000),
    /** Log entries per page (one apply transaction each). */
    pageSize: z.int().min(1).max(50_000).default(1_000),
    /** Rows per initial-sync page. */
    snapshotPageSize: z.int().min(1).max(50_000).default(2_000),
    /** Largest page tried when a child arrives before its parent (see PROTOCOL.md "Apply"). */
    maxPageSize: z.int().min(1).max(200_000).default(64_000),
    /**
     * A page's pull or apply slower than this halves the next page (and pages grow back while
     * fast); one the node cancels with statement_timeout is retried at once at half the size.
     * Hosted Supabase cancels API statements after 8 s.
     */
    pageBudgetMs: ms(1, 3_000),
    /** First wait after a failed cycle; doubles per failure… */
    minBackoffMs: ms(1, 1_000),
    /** …up to this. */
    maxBackoffMs: ms(1, 60_000),
    /**
     * An idle source still moves its horizon (every transaction does); saving that cursor costs a
     * write on the target, so it is saved at most this often when no change came with it.
     */
    idleCursorSaveMs: ms(0, 60_000),
    /** How the clinic server starts when it never synced from the cloud: copy the tables, or replay the cloud's log. */
    initialSync: z.enum(["snapshot", "log"]).default("snapshot"),
    /**
     * How often both nodes' change logs are purged of what every peer acknowledged longer ago
     * than `purgeRetention` (after a cycle that drained both ways; the first such cycle purges).
     * 0: never (an operator purges by hand).
     */
    purgeIntervalMs: ms(0, 3_600_000),
    /**
     * How long an acknowledged change stays in the logs, as a PostgreSQL interval: its content
     * lets a late edit based on it merge column by column. The cloud keeps at least 7 days
     * whatever this says (sql/0006).
     */
    purgeRetention: z
      .string()
      .regex(
        /^\d{1,6} (seconds?|minutes?|hours?|days?)$/,
        'a number and a unit, e.g. "30 days" or "12 hours"',
      )
      .default("30 days"),
  })
  .strict();

export type SyncEngineConfig = z.output<typeof syncEngineConfigSchema>;

export interface SyncEngineOptions extends z.input<typeof syncEngineConfigSchema> {
  /** The clinic server. Conflicts are read and resolved here; it keeps working when the cloud is gone. */
  local: SyncPeer;
  /** The cloud (Supabase). */
  remote: SyncPeer;
  /** Timers and the clock; tests pass a virtual one. Default `asyncScheduler`. */
  scheduler?: SchedulerLike;
  /** Jitter source, 0 ≤ x < 1. Default `Math.random`. */
  random?: () => number;
}

export function parseEngineConfig(options: SyncEngineOptions): Readonly<SyncEngineConfig> {
  const { local: _local, remote: _remote, scheduler: _scheduler, random: _random, ...numbers } = options;
  const config = parseOptions("sync engine", syncEngineConfigSchema, numbers);
  return config;
}
