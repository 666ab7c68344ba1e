import { createSyncEngine, type SyncEngine, type SyncStatus } from "@centrovision/sync-engine";
import { filter, firstValueFrom, map, type Observable, pairwise, startWith } from "rxjs";
import type { DaemonConfig } from "./config/load-config.js";
import { type DaemonStatus, modeOf } from "./daemon-status.js";
import { type HttpEndpoints, startHttpEndpoints } from "./http-server.js";
import { createLogger, type Logger } from "./logger.js";
import { DaemonMetrics } from "./metrics.js";
import { createPeers, hintFor } from "./peers.js";
import { createProgressReporter } from "./progress.js";

export interface StartDaemonOptions {
  /** Default: JSON lines on stderr at `config.log.level`. */
  logger?: Logger;
  /** Serve `/healthz`… (default `config.http.enabled`); `once` turns it off. */
  http?: boolean;
}

export interface Daemon {
  /** The HTTP port actually bound (useful with `port = 0`), or null when the endpoints are off. */
  readonly httpPort: number | null;
  readonly engine: SyncEngine;
  status(): DaemonStatus;
  /** Statuses at the end of each cycle. */
  readonly cycles$: Observable<SyncStatus>;
  /**
   * Stops after the batch in flight (it commits whole or not at all), then closes the peers and
   * the HTTP endpoints. Idempotent.
   */
  stop(): Promise<void>;
}

const ACTIVE = new Set(["pulling", "pushing", "initial-sync"]);

/** Emits the status each time a cycle ends (an active phase gives way to a resting one). */
function cycleEnds(status$: Observable<SyncStatus>): Observable<SyncStatus> {
  return status$.pipe(
    startWith(undefined),
    pairwise(),
    filter(
      ([before, after]) => after !== undefined && ACTIVE.has(before?.phase ?? "") && !ACTIVE.has(after.phase),
    ),
    map(([, after]) => after as SyncStatus),
  );
}

/**
 * Runs the clinic sync daemon in this process: the sync engine between the clinic server and the
 * cloud, its logs, metrics and HTTP endpoints. The first cycle starts at once.
 */
export async function startDaemon(config: DaemonConfig, options: StartDaemonOptions = {}): Promise<Daemon> {
  const logger = options.logger ?? createLogger(config.log.level);
  const metrics = new DaemonMetrics();
  const progress = createProgressReporter(logger, config.log.progressIntervalS);
  const startedAt = new Date().toISOString();
  const { local, remote } = createPeers(config);
  const engine = createSyncEngine({
    local,
    remote,
    intervalMs: config.sync.intervalMs,
    pageSize: config.sync.pageSize,
    snapshotPageSize: config.sync.snapshotPageSize,
    pageBudgetMs: config.sync.pageBudgetMs,
    minBackoffMs: config.sync.minBackoffMs,
    maxBackoffMs: config.sync.maxBackoffMs,
  });
  const status = (): DaemonStatus => {
    const current = engine.getStatus();
    return { ...current, mode: modeOf(current), node: config.nodeName, pid: process.pid, startedAt };
  };
  const cycles$ = cycleEnds(engine.status$);
  const subscriptions = [
    engine.progress$.subscribe((page) => {
      metrics.onProgress(page);
      progress.report(page);
    }),
    engine.status$.subscribe((current) => metrics.onStatus(current)),
    cycles$.subscribe((current) => {
      progress.done();
      metrics.onCycleEnd(current);
      // The engine schedules the next cycle right after publishing this status: a macrotask later,
      // nextCycleAt tells when a failed cycle is retried.
      setImmediate(() => logCycle(logger, { ...current, nextCycleAt: engine.getStatus().nextCycleAt }));
    }),
  ];
  let http: HttpEndpoints | undefined;
  if (options.http ?? config.http.enabled) {
    try {
      http = await startHttpEndpoints(config.http.host, config.http.port, status, metrics);
    } catch (error) {
      await engine.stop();
      await Promise.all([local.close(), remote.close()]);
      throw error;
    }
  }
  logger.info({ node: config.nodeName, httpPort: http?.port ?? null }, "sync daemon started");
  let stopping: Promise<void> | undefined;
  return {
    httpPort: http?.port ?? null,
    engine,
    status,
    cycles$,
    stop() {
      stopping ??= (async () => {
        logger.info("stopping: finishing the batch in flight");
        await engine.stop();
        for (const subscription of subscriptions) subscription.unsubscribe();
        await Promise.all([local.close(), remote.close(), http?.close()]);
        logger.info("sync daemon stopped");
      })();
      return stopping;
    },
  };
}

function logCycle(logger: Logger, status: SyncStatus): void {
  const summary = {
    mode: modeOf(status),
    pendingUp: status.pendingUp,
    pendingDown: status.pendingDown,
    lagMs: status.lagMs,
    conflictsOpen: status.conflictsOpen,
    clockSkewMs: status.clockSkewMs,
  };
  for (const blocked of status.blocked) {
    logger.error(
      { direction: blocked.direction, reason: blocked.reason },
      `sync blocked: ${blocked.message}`,
    );
  }
  if (status.consecutiveFailures > 0 && status.lastError) {
    const { code, message } = status.lastError;
    const retryInS =
      status.nextCycleAt === null ? null : Math.max(0, (Date.parse(status.nextCycleAt) - Date.now()) / 1000);
    logger.warn(
      { ...summary, code, failures: status.consecutiveFailures, retryInS },
      `sync cycle failed: ${message} — ${hintFor(code, message)}${retryInS === null ? "" : `; retrying in ${retryInS.toFixed(1)} s`}`,
    );
    return;
  }
  logger.info(summary, "sync cycle done");
}

/**
 * Runs one cycle and stops: the status after it. When `interrupt` resolves first (a SIGTERM), the
 * cycle stops after its batch in flight.
 */
export async function runOnce(
  config: DaemonConfig,
  options: StartDaemonOptions & { interrupt?: Promise<unknown> } = {},
): Promise<DaemonStatus> {
  const { interrupt, ...startOptions } = options;
  const daemon = await startDaemon(config, { http: false, ...startOptions });
  void interrupt?.then(() => daemon.stop());
  try {
    await firstValueFrom(daemon.cycles$);
    // Let the cycle's log line (written a macrotask later) come before the stop's.
    await new Promise((resolve) => setImmediate(resolve));
    return daemon.status();
  } finally {
    await daemon.stop();
  }
}
