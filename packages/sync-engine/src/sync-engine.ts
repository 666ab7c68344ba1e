import type { CallOptions } from "@centrovision/core";
import {
  asyncScheduler,
  BehaviorSubject,
  defer,
  distinctUntilChanged,
  from,
  map,
  merge,
  NEVER,
  type Observable,
  of,
  race,
  repeat,
  type SchedulerLike,
  Subject,
  type Subscription,
  shareReplay,
  switchMap,
  take,
  takeUntil,
  tap,
  timer,
} from "rxjs";
import { parseEngineConfig, type SyncEngineConfig, type SyncEngineOptions } from "./engine-options.js";
import { CycleRunner } from "./internal/cycle.js";
import type { SyncPeer } from "./sync-peer.js";
import { INITIAL_STATUS, type SyncDirection, type SyncProgress, type SyncStatus } from "./sync-status.js";
import type { ConflictQuery, ConflictResolution, ResolveResult, SyncConflict } from "./sync-types.js";

/**
 * Keeps the clinic server and the cloud in step. Each cycle pulls the cloud's changes to the
 * clinic server, then pushes the clinic server's to the cloud, page by page; cycles never
 * overlap. A failed cycle is retried with a growing, jittered wait; `syncNow()` runs one at once.
 * A peer's `changes$` (the clinic server's LISTEN) starts the next cycle as soon as it reports a
 * change, at most once per `wakeGapMs` and never during a backoff: a write reaches the other side in
 * milliseconds, and a clinic writing all day runs a cycle a second, not back to back. A cycle only
 * the clinic server's changes started does not pull the cloud while the cloud's feed is joined and
 * reported nothing since the last cycle began (a cloud change would have started the cycle itself):
 * its push costs the cloud one request, not two. A cycle the interval or `syncNow()` starts pulls.
 *
 * Guarantees (with the SQL machinery of PROTOCOL.md): a change is applied once or not at all, its
 * cursor saved in the same transaction; a crash anywhere resumes from what the target saved;
 * applied changes never come back; the losing side of a concurrent edit is kept as a conflict.
 */
export interface SyncEngine {
  /** The engine's state; replays the latest to each new subscriber. Completes after `stop()`. */
  readonly status$: Observable<SyncStatus>;
  /** Every page moved by an initial copy or a log replay. Completes after `stop()`. */
  readonly progress$: Observable<SyncProgress>;
  getStatus(): SyncStatus;
  /**
   * Runs a cycle now (skipping any wait or backoff) and resolves with the status after it. A call
   * during a cycle is served by the next one, which starts as soon as the current one ends, so it
   * always sees writes made before the call. Resolves at once once stopped.
   */
  syncNow(): Promise<SyncStatus>;
  /**
   * Stops after the batch in flight, which either commits whole or not at all (its cursor is saved
   * in its own transaction). The peers are not closed: they belong to the caller.
   */
  stop(): Promise<void>;
  /** Clinic changes the cloud has not acknowledged, read now from the clinic server. */
  pendingUp(options?: CallOptions): Promise<number>;
  /** Conflicts recorded on the clinic server, oldest first. */
  listConflicts(query?: ConflictQuery, options?: CallOptions): Promise<SyncConflict[]>;
  /**
   * Settles a conflict on the clinic server: `keep` one side's row (as recorded there) or write a
   * `merged` row. The choice is a new edit that syncs like any other and closes the conflict on
   * the cloud too; a cycle is started for it.
   */
  resolveConflict(
    id: string,
    resolution: ConflictResolution,
    options?: CallOptions & { resolvedBy?: string },
  ): Promise<ResolveResult>;
  /**
   * Forgets what the target of `direction` holds about its source (after a restore or
   * re-initialisation made it block) so the next cycle starts that direction over: an initial
   * copy for `pull`, a full log replay for `push`.
   */
  resync(direction: SyncDirection, options?: CallOptions): Promise<void>;
}

export function createSyncEngine(options: SyncEngineOptions): SyncEngine {
  return new Engine(options, parseEngineConfig(options));
}

class Engine implements SyncEngine {
  readonly status$: Observable<SyncStatus>;
  readonly progress$: Observable<SyncProgress>;
  private readonly local: SyncPeer;
  private readonly remote: SyncPeer;
  private readonly scheduler: SchedulerLike;
  private readonly status = new BehaviorSubject<SyncStatus>(INITIAL_STATUS);
  private readonly progress = new Subject<SyncProgress>();
  private readonly trigger = new Subject<void>();
  private readonly stopSignal = new Subject<void>();
  private readonly runner: CycleRunner;
  private readonly subscription: Subscription;
  private readonly feed: Subscription;
  private readonly changes = new Subject<void>();
  private readonly wakeGapMs: number;
  /** A change was reported since the last cycle started; `remoteChanged`: by the cloud's feed. */
  private changed = false;
  private remoteChanged = false;
  /** The next cycle is one a reported change started (not the interval, not a `syncNow()`). */
  private woken = false;
  private lastEarlyAt = Number.NEGATIVE_INFINITY;
  private waiters: ((status: SyncStatus) => void)[] = [];
  private requested = false;
  private inFlight: Promise<void> | undefined;
  private stopping: Promise<void> | undefined;

  constructor(options: SyncEngineOptions, config: Readonly<SyncEngineConfig>) {
    this.local = options.local;
    this.remote = options.remote;
    this.scheduler = options.scheduler ?? asyncScheduler;
    this.status$ = this.status.pipe(distinctUntilChanged(), shareReplay({ bufferSize: 1, refCount: true }));
    this.progress$ = this.progress.asObservable();
    this.runner = new CycleRunner({
      local: options.local,
      remote: options.remote,
      config,
      now: () => this.scheduler.now(),
      random: options.random ?? Math.random,
      isStopping: () => this.stopping !== undefined,
      publish: (patch) => this.publish(patch),
      onProgress: (progress) => this.progress.next(progress),
    });
    this.wakeGapMs = Math.min(config.wakeGapMs, config.intervalMs);
    const feeds = [
      options.local.changes$?.pipe(map((notice) => ({ ...notice, remote: false }))),
      options.remote.changes$?.pipe(map((notice) => ({ ...notice, remote: true }))),
    ].filter((f) => f !== undefined);
    this.feed = merge(...feeds).subscribe(({ origins, scopes, remote }) => {
      // The echo of this clinic server's own push wakes nobody.
      const own = this.runner.knownLocalNodeId();
      if (origins !== null && own !== undefined && origins.every((origin) => origin === own)) return;
      // Nor does a change outside the scope the cloud says this clinic holds.
      const held = this.runner.knownRemoteScope();
      if (scopes && held && !scopes.some((scope) => held.includes(scope))) return;
      this.changed = true;
      if (remote) this.remoteChanged = true;
      this.changes.next();
    });
    this.subscription = defer(() => from(this.cycle()))
      .pipe(repeat({ delay: () => this.nextCycle() }), takeUntil(this.stopSignal))
      .subscribe();
  }

  getStatus(): SyncStatus {
    return this.status.value;
  }

  syncNow(): Promise<SyncStatus> {
    if (this.stopping) return Promise.resolve(this.status.value);
    const done = new Promise<SyncStatus>((resolve) => this.waiters.push(resolve));
    this.requested = true;
    this.trigger.next();
    return done;
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.stopSignal.next();
      this.subscription.unsubscribe();
      this.feed.unsubscribe();
      await this.inFlight;
      this.publish({ phase: "stopped", nextCycleAt: null });
      for (const resolve of this.waiters.splice(0)) resolve(this.status.value);
      this.status.complete();
      this.progress.complete();
    })();
    return this.stopping;
  }

  async pendingUp(options?: CallOptions): Promise<number> {
    return this.local.pending(await this.runner.remoteNodeId(), options);
  }

  listConflicts(query?: ConflictQuery, options?: CallOptions): Promise<SyncConflict[]> {
    return this.local.listConflicts(query, options);
  }

  async resolveConflict(
    id: string,
    resolution: ConflictResolution,
    options?: CallOptions & { resolvedBy?: string },
  ): Promise<ResolveResult> {
    const result = await this.local.resolveConflict(id, resolution, options);
    void this.syncNow();
    return result;
  }

  async resync(direction: SyncDirection, options?: CallOptions): Promise<void> {
    const [target, sourceId] =
      direction === "pull"
        ? [this.local, await this.runner.remoteNodeId()]
        : [this.remote, await this.runner.localNodeId()];
    await target.resetPeer(sourceId, options);
    this.runner.unblock(direction);
    this.publish({ blocked: this.status.value.blocked.filter((b) => b.direction !== direction) });
  }

  private async cycle(): Promise<void> {
    const served = this.waiters.splice(0);
    const pushOnly =
      this.woken && !this.requested && !this.remoteChanged && this.remote.listening?.() === true;
    this.requested = false;
    this.changed = false;
    this.remoteChanged = false;
    this.woken = false;
    this.inFlight = this.runner.run({ pushOnly });
    try {
      await this.inFlight;
    } finally {
      this.inFlight = undefined;
      for (const resolve of served) resolve(this.status.value);
    }
  }

  /**
   * What ends the wait after a cycle: its delay, a `syncNow()` (one made during the cycle counts),
   * or a reported change (one reported during the cycle counts too; not during a backoff).
   */
  private nextCycle(): Observable<unknown> {
    if (this.requested) return of(0);
    const delay = this.runner.nextDelayMs(
      this.local.listening?.() === true && this.remote.listening?.() === true,
    );
    this.publish({ nextCycleAt: new Date(this.scheduler.now() + delay).toISOString() });
    return race(timer(delay, this.scheduler), this.trigger, this.runner.backingOff() ? NEVER : this.early());
  }

  /** The first change reported, held until `wakeGapMs` has passed since the last early cycle. */
  private early(): Observable<unknown> {
    const heard: Observable<unknown> = this.changed ? of(0) : this.changes.pipe(take(1));
    return heard.pipe(
      switchMap(() =>
        timer(Math.max(0, this.lastEarlyAt + this.wakeGapMs - this.scheduler.now()), this.scheduler),
      ),
      tap(() => {
        this.lastEarlyAt = this.scheduler.now();
        this.woken = true;
      }),
    );
  }

  private publish(patch: Partial<SyncStatus>): void {
    if (this.status.closed) return;
    this.status.next(Object.freeze({ ...this.status.value, ...patch }));
  }
}
