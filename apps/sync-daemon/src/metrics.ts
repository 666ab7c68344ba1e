import type { ChangeLogState, SyncProgress, SyncStatus } from "@centrovision/sync-engine";

/** One purge run: when it ended well, or when it failed. */
const purgeKey = (log: ChangeLogState) => `${log.purgedAt ?? ""}|${log.error?.at ?? ""}`;

import { Counter, collectDefaultMetrics, Gauge, Registry } from "prom-client";

/**
 * How often the event-loop lag metric samples. prom-client's default (10 ms) wakes the daemon a
 * hundred times a second for it, which was most of an idle daemon's CPU (0.6 of 0.7 CPU-s/min);
 * a lag worth reporting is still seen at one sample a second.
 */
const EVENT_LOOP_SAMPLE_MS = 1_000;

/** The daemon's Prometheus metrics, on their own registry (two daemons in one process never clash). */
export class DaemonMetrics {
  readonly registry = new Registry();
  private readonly cycles = new Counter({
    name: "centrovision_sync_cycles_total",
    help: "Sync cycles run, by result",
    labelNames: ["result"] as const,
    registers: [this.registry],
  });
  private readonly rows = new Counter({
    name: "centrovision_sync_rows_total",
    help: "Rows (initial copy) or changes (log) applied, by direction and stage",
    labelNames: ["direction", "stage"] as const,
    registers: [this.registry],
  });
  private readonly errors = new Counter({
    name: "centrovision_sync_errors_total",
    help: "Failed cycles, by error code",
    labelNames: ["code"] as const,
    registers: [this.registry],
  });
  private readonly lag = new Gauge({
    name: "centrovision_sync_lag_seconds",
    help: "Time since the staler direction last drained its source",
    registers: [this.registry],
  });
  private readonly pending = new Gauge({
    name: "centrovision_sync_pending_changes",
    help: "Changes not yet acknowledged: up = clinic to cloud, down = cloud to clinic",
    labelNames: ["direction"] as const,
    registers: [this.registry],
  });
  private readonly conflicts = new Gauge({
    name: "centrovision_sync_conflicts_open",
    help: "Conflicts waiting for a reviewer on the clinic server",
    registers: [this.registry],
  });
  private readonly skew = new Gauge({
    name: "centrovision_sync_clock_skew_seconds",
    help: "Cloud clock minus clinic clock",
    registers: [this.registry],
  });
  private readonly lastSuccess = new Gauge({
    name: "centrovision_sync_last_success_timestamp_seconds",
    help: "End of the last cycle in which both directions drained (Unix time)",
    registers: [this.registry],
  });
  private readonly blocked = new Gauge({
    name: "centrovision_sync_blocked",
    help: "1 while a direction is stopped until a person acts",
    labelNames: ["direction"] as const,
    registers: [this.registry],
  });

  private readonly logEntries = new Gauge({
    name: "centrovision_sync_change_log_entries",
    help: "Entries in each node's change log after its last purge",
    labelNames: ["node"] as const,
    registers: [this.registry],
  });
  private readonly logPurged = new Counter({
    name: "centrovision_sync_change_log_purged_total",
    help: "Change log entries purged (acknowledged by every peer, older than the retention), by node",
    labelNames: ["node"] as const,
    registers: [this.registry],
  });
  private readonly logPurgeFailures = new Counter({
    name: "centrovision_sync_change_log_purge_failures_total",
    help: "Purges that failed (the log grows until the next one), by node",
    labelNames: ["node"] as const,
    registers: [this.registry],
  });
  /** The last purge counted, by node: the status repeats it every cycle until the next one. */
  private readonly countedPurges = new Map<string, string>();

  constructor() {
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
    this.cycles.inc({ result: "success" }, 0);
    this.cycles.inc({ result: "failure" }, 0);
  }

  onCycleEnd(status: SyncStatus): void {
    const failed = status.lastError !== null && status.consecutiveFailures > 0;
    this.cycles.inc({ result: failed ? "failure" : "success" });
    if (failed && status.lastError) this.errors.inc({ code: status.lastError.code });
    this.onStatus(status);
  }

  onStatus(status: SyncStatus): void {
    const set = (gauge: Gauge, value: number | null, labels?: Record<string, string>) => {
      if (value === null) return;
      if (labels) gauge.set(labels, value);
      else gauge.set(value);
    };
    set(this.lag, status.lagMs === null ? null : status.lagMs / 1000);
    set(this.pending, status.pendingUp, { direction: "up" });
    set(this.pending, status.pendingDown, { direction: "down" });
    set(this.conflicts, status.conflictsOpen);
    set(this.skew, status.clockSkewMs === null ? null : status.clockSkewMs / 1000);
    set(this.lastSuccess, status.lastSuccessAt === null ? null : Date.parse(status.lastSuccessAt) / 1000);
    for (const direction of ["pull", "push"] as const) {
      this.blocked.set({ direction }, status.blocked.some((b) => b.direction === direction) ? 1 : 0);
    }
    for (const node of ["clinic", "cloud"] as const) {
      const log = status.changeLog[node];
      if (log === null) continue;
      set(this.logEntries, log.entries, { node });
      const which = purgeKey(log);
      if (this.countedPurges.get(node) === which) continue;
      this.countedPurges.set(node, which);
      this.logPurged.inc({ node }, log.purged);
      if (log.error !== null) this.logPurgeFailures.inc({ node });
    }
  }

  onProgress(progress: SyncProgress): void {
    if (progress.event === "applied") {
      this.rows.inc({ direction: progress.direction, stage: progress.stage }, progress.pageRows);
    }
  }
}
