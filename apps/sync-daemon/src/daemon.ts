import { PRODUCT_VERSION } from "@centrovision/core";
import { createSyncEngine, type SyncEngine, type SyncStatus } from "@centrovision/sync-engine";
import {
  asyncScheduler,
  exhaustMap,
  filter,
  firstValueFrom,
  map,
  type Observable,
  pairwise,
  ReplaySubject,
  startWith,
  throttleTime,
} from "rxjs";
import type { DaemonConfig } from "./config/load-config.js";
import { type DaemonStatus, modeOf } from "./daemon-status.js";
import { type HttpEndpoints, startHttpEndpoints } from "./http-server.js";
import { createIdentityCopier, type IdentityStatus } from "./identity-copy.js";
import { createLogger, type Logger } from "./logger.js";
import { DaemonMetrics } from "./metrics.js";
import { createPeers, hintFor } from "./peers.js";
import { createProgressReporter } from "./progress.js";
import { checkClinicSchema } from "./schema-check.js";

export interface StartDaemonOptions {
  /** Default: JSON lines on stderr at `config.log.level`. */
  logger?: Logger;
  /** Serve `/healthz`… (default `config.http.enabled`); `once` turns it off. */
  http?: boolean;
  /**
   * One run (`once`): no "started"/"stopped" lines and no per-cycle line (no "retrying in…": it
   * does not retry); the caller prints the run's summary. Warnings and progress still go to the log.
   */
  oneRun?: boolean;
}

export interface Daemon {
  /** The HTTP port actually bound (useful with `port = 0`), or null when the endpoints are off. */
  readonly httpPort: number | null;
  readonly engine: SyncEngine;
  /** The daemon's status with the engine's now, or with `sync`, a status the engine published. */
  status(sync?: SyncStatus): DaemonStatus;
  /** Statuses at the end of each cycle. */
  readonly cycles$: Observable<SyncStatus>;
  /** The identity copy's status after each pass (the last one replayed); completes on `stop()`. */
  readonly identity$: Observable<IdentityStatus>;
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

/** Emits each time a cycle starts (a resting phase, or none yet, gives way to an active one). */
function cycleStarts(status$: Observable<SyncStatus>): Observable<SyncStatus> {
  return status$.pipe(
    startWith(undefined),
    pairwise(),
    filter(
      ([before, after]) => after !== undefined && !ACTIVE.has(before?.phase ?? "") && ACTIVE.has(after.phase),
    ),
    map(([, after]) => after as SyncStatus),
  );
}

/**
 * Runs the clinic sync daemon in this process: the sync engine between the clinic server and the
 * cloud, its logs, metrics and HTTP endpoints. The first cycle starts at once; a write on either
 * side starts one early (the engine's wake-ups). When a cycle starts, the identity copy (clinic key
 * to the cloud, the cloud's disabled users to the clinic) runs beside it, one pass at a time and
 * at most once per interval: a pass still running, or one less than an interval old, makes that
 * cycle go without one. A clinic database a newer CentroVision migrated is refused before anything
 * starts (`conflict`, see {@link checkClinicSchema}).
 */
export async function startDaemon(config: DaemonConfig, options: StartDaemonOptions = {}): Promise<Daemon> {
  const logger = options.logger ?? createLogger(config.log.level);
  const schema = await checkClinicSchema(config);
  if (!schema.checked) {
    logger.warn(
      "could not ask the clinic database which version migrated it: checked at the next start; the sync retries the database meanwhile",
    );
  }
  const metrics = new DaemonMetrics();
  const progress = createProgressReporter(logger, config.log.progressIntervalS);
  const startedAt = new Date().toISOString();
  const { local, remote } = createPeers(config);
  // One run has no next cycle to start early: it opens no LISTEN and joins no Realtime channel.
  const engine = createSyncEngine({
    local: options.oneRun ? { ...local, changes$: undefined } : local,
    remote: options.oneRun ? { ...remote, changes$: undefined } : remote,
    intervalMs: config.sync.intervalMs,
    quietIntervalMs: config.sync.quietIntervalMs,
    pageSize: config.sync.pageSize,
    snapshotPageSize: config.sync.snapshotPageSize,
    pageBudgetMs: config.sync.pageBudgetMs,
    minBackoffMs: config.sync.minBackoffMs,
    maxBackoffMs: config.sync.maxBackoffMs,
    purgeIntervalMs: config.sync.purgeIntervalMs,
    purgeRetention: config.sync.purgeRetention,
  });
  const identity = createIdentityCopier({ cloud: remote, clinic: local });
  const identityPasses = new ReplaySubject<IdentityStatus>(1);
  const status = (current: SyncStatus = engine.getStatus()): DaemonStatus => {
    return {
      ...current,
      mode: modeOf(current),
      node: config.nodeName,
      version: PRODUCT_VERSION,
      pid: process.pid,
      startedAt,
      identity: identity.status(),
    };
  };
  const cycles$ = cycleEnds(engine.status$);
  const subscriptions = [
    cycleStarts(engine.status$)
      .pipe(
        // Wake-ups start cycles up to once a second while the clinic writes; the identity copy
        // keeps the interval's pace.
        throttleTime(config.sync.intervalMs, asyncScheduler, { leading: true, trailing: false }),
        exhaustMap(() => {
          const before = identity.status();
          return identity.copy().then((after) => ({ before, after }));
        }),
      )
      .subscribe(({ before, after }) => {
        logIdentity(logger, before, after);
        identityPasses.next(after);
      }),
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
      if (!options.oneRun) {
        setImmediate(() => logCycle(logger, { ...current, nextCycleAt: engine.getStatus().nextCycleAt }));
      }
    }),
  ];
  let http: HttpEndpoints | undefined;
  if (options.http ?? config.http.enabled) {
    try {
      http = await startHttpEndpoints(config.http.host, config.http.port, status, metrics);
    } catch (error) {
      await engine.stop();
      for (const subscription of subscriptions) subscription.unsubscribe();
      await Promise.all([local.close(), remote.close(), identity.close()]);
      throw error;
    }
  }
  if (!options.oneRun) {
    logger.info(
      { node: config.nodeName, version: PRODUCT_VERSION, httpPort: http?.port ?? null },
      "sync daemon started",
    );
  }
  let stopping: Promise<void> | undefined;
  return {
    httpPort: http?.port ?? null,
    engine,
    status,
    cycles$,
    identity$: identityPasses.asObservable(),
    stop() {
      stopping ??= (async () => {
        if (!options.oneRun) logger.info("stopping: finishing the batch in flight");
        await engine.stop();
        for (const subscription of subscriptions) subscription.unsubscribe();
        await Promise.all([local.close(), remote.close(), identity.close(), http?.close()]);
        identityPasses.complete();
        if (!options.oneRun) logger.info("sync daemon stopped");
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
    quarantined: status.quarantined,
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

function logIdentity(logger: Logger, before: IdentityStatus, after: IdentityStatus): void {
  // Each step of the pass runs whatever another one did: a registration is news even when a later
  // step (the audit trails) failed.
  if (after.keyRegisteredAt !== before.keyRegisteredAt) {
    logger.info({ keyId: after.keyId }, "clinic key registered with the cloud");
  }
  if (after.lastError) {
    const { code, message } = after.lastError;
    // invalid_config messages say what to do themselves.
    const hint = code === "invalid_config" ? "" : ` — ${hintFor(code, message)}`;
    logger.warn({ code }, `clinic identity copy failed: ${message}${hint}; retrying with the next cycle`);
    return;
  }
  const changed = after.disabledUsers !== before.disabledUsers || before.lastError !== null;
  logger[changed ? "info" : "debug"](
    { disabledUsers: after.disabledUsers },
    "disabled users copied from the cloud to the clinic server",
  );
}

/**
 * Runs one cycle (and the identity copy beside it) and stops: the status that cycle ended with,
 * and the identity pass's. The engine stops after that one cycle, so an identity pass that outlasts
 * the interval finds no second cycle running. When `interrupt` resolves first (a SIGTERM), the
 * cycle stops after its batch in flight.
 */
export async function runOnce(
  config: DaemonConfig,
  options: StartDaemonOptions & { interrupt?: Promise<unknown> } = {},
): Promise<DaemonStatus> {
  const { interrupt, ...startOptions } = options;
  const daemon = await startDaemon(config, { http: false, oneRun: true, ...startOptions });
  void interrupt?.then(() => daemon.stop());
  try {
    const cycle = firstValueFrom(daemon.cycles$).then(async (ended) => {
      await daemon.engine.stop();
      return ended;
    });
    const [ended] = await Promise.all([cycle, firstValueFrom(daemon.identity$, { defaultValue: undefined })]);
    return daemon.status(ended);
  } finally {
    await daemon.stop();
  }
}
