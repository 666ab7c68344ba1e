import {
  asyncScheduler,
  BehaviorSubject,
  distinctUntilChanged,
  type Observable,
  type SchedulerLike,
} from "rxjs";
import type { Capabilities, DataSource, ProbeResult } from "../data-source.js";
import type { CallOptions } from "../deadline.js";
import { CvError, isCvError, isTierDown } from "../errors.js";
import { type ConnectionStatus, TIERS, type Tier } from "../status.js";
import type { TableName } from "../tables/index.js";
import { isServing } from "./health.js";
import { type JournalEntry, type UnknownWrite, type UnknownWriteOutcome, WriteJournal } from "./journal.js";
import { createRoutedRepository } from "./routed-repository.js";
import type { Attempt, RoutedWork, RouterCallContext } from "./router-call.js";
import { parseRouterConfig, type RouterConfig, type RouterConfigInput } from "./router-config.js";
import { buildStatus, type RouterCounters } from "./router-status.js";
import { TierMonitor } from "./tier-monitor.js";

/** What the router needs from the rest of the system; every hook is optional. */
export interface RouterHooks {
  /**
   * Writes made on `tier` that have not reached the cloud yet. Failback from `tier` waits until 0.
   * When asked to decide a failback, `failback.since` is when the better tier came back (scheduler
   * time, the same for every ask of one wait): counting only what was written on `tier` before the
   * first such ask lets a steady stream of new writes not hold the PC there forever.
   */
  pendingChanges?(tier: Tier, failback?: { readonly since: number }): Promise<number>;
  /**
   * Makes this PC's recent writes present on `to` at failover (read-your-writes): on a switch from
   * `from` down to `to`, the writes taken by the tiers above `to` (each entry names its tier), the
   * latest per row. Version-checked on the clinic server; on the device, never over a newer row or a
   * pending local edit.
   */
  carryWrites?(from: Tier, to: Tier, writes: readonly JournalEntry[]): Promise<void>;
  /**
   * Makes this PC's writes that `from`, a tier below `to`, took present on `to` (read-your-writes):
   * when a try on `to` failed and `from` took the write while the router stayed on `to` (`writes`
   * are what `from` returned; none for the device, whose outbox holds its own writes), and at a
   * failback to `to` (the journal's recent writes `from` took: `to` may lack them while `from`'s
   * sync has not sent them, or if `from` stopped first). Calls wait for it, up to `to`'s hedge
   * delay, their own deadline or a switch away from `to`; reads then go to `from` until it settles.
   * It must settle (the PC's hooks bound it with their timeout). If it rejects, a server's writes
   * are counted as pending and lifted again every probe interval, reads still going to `from`,
   * while the router stays on `to`, the person is the same and the writes are within the journal's
   * time; the device's outbox is counted and drained again by its own means.
   */
  liftWrites?(from: Tier, to: Tier, writes: readonly JournalEntry[]): Promise<void>;
  /** Time of the last successful sync, for the status. */
  lastSyncAt?(): string | null;
  /** Whether a sync is running now, for the status icon's spinner. */
  isSyncing?(): boolean;
  /** Called when a write whose outcome was unknown has been checked on its tier. */
  onReconciled?(write: UnknownWrite, outcome: UnknownWriteOutcome): void;
}

export interface FailoverRouterOptions {
  id?: string;
  /** The tiers, best first: cloud (Supabase), clinic server (Postgres), this PC (SQLite). */
  sources: readonly DataSource[];
  config?: RouterConfigInput;
  hooks?: RouterHooks;
  /** Time source and timers; tests pass a virtual one. */
  scheduler?: SchedulerLike;
  /** Jitter source, 0 ≤ x < 1. */
  random?: () => number;
}

export interface FailoverRouter extends DataSource {
  readonly status$: Observable<ConnectionStatus>;
  getStatus(): ConnectionStatus;
  /** Never use a tier above `tier` (e.g. pin "clinic" while the clinic's internet is unreliable). */
  pin(tier: Tier): void;
  unpin(): void;
  /**
   * Forgets this PC's recent writes (the journal) and the writes whose outcome is unknown. Call it
   * when the signed-in person changes: a carry, a lift or a hedge's carry runs with the session of
   * whoever is signed in then, and must never send one person's writes as another's.
   */
  forgetWrites(): void;
  counters(): RouterCounters;
  /**
   * The router kept to the servers, every tier above this PC's own copy (`device`): a call goes to
   * the best server that serves, fails over and hedges among them alone, and rejects
   * `unavailable` when none answers. For work whose answer must come from a server, such as
   * refreshing the PC's copy: through the router itself, a read the servers failed mid-way would be
   * served by that copy. Closing it closes nothing; it stops with the router.
   */
  servers(): DataSource;
}

/**
 * Routes every call to the best tier that answers and moves between tiers by
 * itself. It is a `DataSource` and owns the sources it is given (closing the
 * router closes them).
 */
export function createFailoverRouter(options: FailoverRouterOptions): FailoverRouter {
  const config: RouterConfig = parseRouterConfig(options.config);
  if (options.sources.length === 0 || options.sources.length > TIERS.length) {
    throw new CvError(
      "invalid_config",
      `[core] the failover router needs 1 to ${TIERS.length} sources, best first`,
    );
  }
  return new Router(options, config);
}

/** Writes a lower tier took, being lifted to the active tier. */
interface Lift {
  readonly from: number;
  readonly writes: readonly JournalEntry[];
  /** A try failed: the writes count as pending until a later try lands them. */
  failed: boolean;
  /** The next try, once one failed. */
  retry?: { unsubscribe(): void };
}

/** One routed call, as every try of it sees it. */
interface Call<T> {
  readonly kind: "read" | "write";
  readonly deadline: number;
  readonly options: CallOptions | undefined;
  readonly work: RoutedWork<T>;
  readonly attempt: number;
  readonly forgotten: number;
  /** A hedge's tier could not serve the read: it is not asked again, and its error is the call's if no tier answers. */
  readonly refused: (tier: number, error: unknown) => void;
}

/**
 * An error about the tier, not the read: it refuses the person (no session of theirs there, or one
 * it no longer takes), or is set up wrong. Another tier may well answer the same read. (`unknown`
 * is not one: it may be about the read, or pass, and the tier may serve the next try.)
 */
const tierCannotServe = (error: unknown) =>
  isCvError(error) && (error.code === "unauthorized" || error.code === "invalid_config");

/**
 * The first answer of two tries of one read: a value, or an error that is not a lost tier. Only
 * when both tiers are lost does it fail, with the first try's error. The second try's error about
 * its own tier (`tierCannotServe`: no session of the person there yet, such as a clinic session
 * still being fetched, or a tier set up wrong) says nothing about the read, and counts as lost too.
 */
function firstAnswer<T>(first: Promise<T>, second: Promise<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let lost = 0;
    let firstError: unknown;
    for (const [position, call] of [first, second].entries()) {
      call.then(resolve, (error: unknown) => {
        if (!isTierDown(error) && !(position === 1 && tierCannotServe(error))) return reject(error);
        if (position === 0) firstError = error;
        lost++;
        if (lost === 2) reject(firstError ?? error);
      });
    }
  });
}

class Router implements FailoverRouter, RouterCallContext {
  readonly id: string;
  readonly kind = "router" as const;
  readonly capabilities: Capabilities;
  private readonly monitors: TierMonitor[];
  private readonly scheduler: SchedulerLike;
  private readonly hooks: RouterHooks;
  private readonly journal: WriteJournal;
  private readonly status: BehaviorSubject<ConnectionStatus>;
  private readonly counts: RouterCounters = {
    switches: 0,
    unknownWrites: 0,
    retriedCalls: 0,
    hedgedReads: 0,
    hedgesWon: 0,
    timeInTierMs: {},
  };
  private unknown: UnknownWrite[] = [];
  /** Per tier, the journaled writes a hedged read has already carried there. */
  private readonly carriedForHedges = TIERS.map(() => new WeakSet<JournalEntry>());
  private active = 0;
  private activeSince: number;
  private pinned: { index: number; byHand: boolean; until: number | null } | null = null;
  private switchTimes: number[] = [];
  private reason = "starting: checking every tier";
  /**
   * The last count of pending changes read for each tier. The status shows the active tier's, so
   * a switch never shows the tier it left; the device's is read at every tick (a local count), so
   * it is exact the moment the PC goes offline, and the new tier's is read again at once.
   */
  private readonly pending = new Map<Tier, number>();
  /** Calls wait for these: a carry at a switch, a lift after a write taken below (each bounded). */
  private readonly holds = new Set<Promise<void>>();
  /** Ends each hold, with whether it is a lift's (which a switch away from its tier makes moot). */
  private readonly releases = new Map<() => void, boolean>();
  /**
   * Lifts to the active tier still running, by the tier that took the writes; `failed` once a try
   * failed: it is tried again, and its writes are counted as pending, until they are there.
   */
  private readonly lifts = new Set<Lift>();
  /** Per tier, the journaled writes already lifted there (a failback lifts only the others). */
  private readonly liftedTo = TIERS.map(() => new WeakSet<JournalEntry>());
  /** Times `forgetWrites` ran: a write from a call that began before the last is not journaled. */
  private forgotten = 0;
  private failbackCheck: Promise<void> | null = null;
  private failbackSince: number | null = null;
  private timer: ReturnType<SchedulerLike["schedule"]> | undefined;
  private closed = false;

  constructor(
    options: FailoverRouterOptions,
    private readonly config: RouterConfig,
  ) {
    this.id = options.id ?? "router";
    this.scheduler = options.scheduler ?? asyncScheduler;
    this.hooks = options.hooks ?? {};
    this.journal = new WriteJournal(config.journalSize, config.journalTtlMs);
    this.activeSince = this.scheduler.now();
    const sources = options.sources;
    this.capabilities = {
      transactions: sources.every((s) => s.capabilities.transactions),
      changeFeed: false,
      durable: sources.every((s) => s.capabilities.durable),
      rowLevelSecurity: sources.some((s) => s.capabilities.rowLevelSecurity),
    };
    this.monitors = sources.map((source) => new TierMonitor(source, config, this.scheduler, options.random));
    this.status = new BehaviorSubject(this.snapshot());
    for (const [index, monitor] of this.monitors.entries()) {
      monitor.changes$.subscribe(() => {
        this.evaluate();
        if (monitor.state.health === "up") void this.reconcile(index);
      });
      monitor.start();
    }
    this.tick();
  }

  get status$(): Observable<ConnectionStatus> {
    return this.status.pipe(distinctUntilChanged());
  }

  getStatus(): ConnectionStatus {
    return this.status.value;
  }

  counters(): RouterCounters {
    const now = this.scheduler.now();
    const tier = TIERS[this.active] as Tier;
    const timeInTierMs = { ...this.counts.timeInTierMs };
    timeInTierMs[tier] = (timeInTierMs[tier] ?? 0) + (now - this.activeSince);
    return { ...this.counts, timeInTierMs };
  }

  pin(tier: Tier): void {
    const index = TIERS.indexOf(tier);
    if (index < 0 || index >= this.monitors.length) {
      throw new CvError("invalid_input", `[core] cannot pin ${String(tier)}: this router has no such tier`);
    }
    this.pinned = { index, byHand: true, until: null };
    this.evaluate();
  }

  unpin(): void {
    this.pinned = null;
    this.evaluate();
  }

  forgetWrites(): void {
    this.forgotten++;
    this.journal.clear();
    this.unknown = [];
    // A failed lift's next try would run with the next person's session.
    this.dropLifts();
    this.publish();
  }

  table<T extends TableName>(name: T) {
    return createRoutedRepository(name, this);
  }

  probe(options?: CallOptions): Promise<ProbeResult> {
    return this.run("read", "probe", options, (source, o) => source.probe(o));
  }

  servers(): DataSource {
    const below = Math.min(this.monitors.length, TIERS.indexOf("device"));
    const context: RouterCallContext = {
      run: (kind, label, options, work) => this.run(kind, label, options, work, below),
      recordWrite: (at, entries) => this.recordWrite(at, entries),
      recordUnknown: (at, writes) => this.recordUnknown(at, writes),
    };
    return {
      id: `${this.id}:servers`,
      kind: this.kind,
      capabilities: this.capabilities,
      probe: (options) => context.run("read", "probe", options, (source, o) => source.probe(o)),
      table: (name) => createRoutedRepository(name, context),
      close: async () => {},
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.timer?.unsubscribe();
    this.dropLifts();
    for (const release of this.releases.keys()) release();
    for (const monitor of this.monitors) monitor.stop();
    this.status.complete();
    await Promise.all(this.monitors.map((monitor) => monitor.source.close()));
  }

  /** Runs `work` on the best tier that answers, among the tiers above `below` (all by default). */
  async run<T>(
    kind: "read" | "write",
    label: string,
    options: CallOptions | undefined,
    work: RoutedWork<T>,
    below = this.monitors.length,
  ) {
    if (this.closed) throw new CvError("unavailable", `[core] router ${this.id} is closed`);
    const deadline = this.scheduler.now() + (options?.timeoutMs ?? this.config.callTimeoutMs);
    const forgotten = this.forgotten;
    const tried = new Set<number>();
    for (let index = below; index < this.monitors.length; index++) tried.add(index);
    let lastError: unknown;
    let refusal: unknown;
    const refused = (tier: number, error: unknown) => {
      tried.add(tier);
      refusal ??= error;
    };
    for (let attempt = 0; ; attempt++) {
      await this.heldUntil(deadline, options?.signal);
      if (this.closed) throw new CvError("unavailable", `[core] router ${this.id} is closed`);
      const index =
        kind === "read" ? (this.liftingFrom(tried) ?? this.pickTier(tried)) : this.pickTier(tried);
      const remaining = deadline - this.scheduler.now();
      if (index === undefined || remaining <= 0) {
        const failure = refusal ?? lastError;
        if (failure) throw failure;
        throw new CvError(remaining <= 0 ? "timeout" : "unavailable", `[core] ${label}: no tier answered`);
      }
      const call: Call<T> = { kind, deadline, options, work, attempt, forgotten, refused };
      try {
        return await (kind === "read" ? this.hedged(index, tried, call) : this.attempt(index, call));
      } catch (error) {
        if (!isTierDown(error) || options?.signal?.aborted) throw error;
        tried.add(index);
        lastError = error;
        if (kind === "write" || attempt > 0) this.counts.retriedCalls++;
      }
    }
  }

  /** Waits while calls are held, at most until `deadline`, the caller's abort or the router's close. */
  private async heldUntil(deadline: number, signal: AbortSignal | undefined): Promise<void> {
    while (this.holds.size > 0 && !this.closed && !signal?.aborted && this.scheduler.now() < deadline) {
      await new Promise<void>((resolve) => {
        const done = () => {
          handle.unsubscribe();
          signal?.removeEventListener("abort", done);
          resolve();
        };
        const handle = this.scheduler.schedule(done, deadline - this.scheduler.now());
        signal?.addEventListener("abort", done, { once: true });
        void Promise.all(this.holds).then(done);
      });
    }
  }

  /**
   * While a lift to the active tier is still running past its hold, the tier that took the write,
   * for a read: the active tier does not show the write yet.
   */
  private liftingFrom(tried: ReadonlySet<number>): number | undefined {
    const from = [...this.lifts].at(-1)?.from;
    if (from === undefined || tried.has(from)) return undefined;
    return isServing((this.monitors[from] as TierMonitor).state) ? from : undefined;
  }

  /** One try of `call` on tier `index`; a read's time feeds the tier's hedge delay, a lost tier its health. */
  private attempt<T>(index: number, call: Call<T>): Promise<T> {
    const monitor = this.monitors[index] as TierMonitor;
    const signals = [monitor.signal, call.options?.signal].filter((s): s is AbortSignal => s !== undefined);
    const started = this.scheduler.now();
    return call
      .work(
        monitor.source,
        { timeoutMs: call.deadline - started, signal: AbortSignal.any(signals) },
        { tier: index, attempt: call.attempt, forgotten: call.forgotten },
      )
      .then(
        (value) => {
          if (call.kind === "read") monitor.recordLatency(this.scheduler.now() - started);
          return value;
        },
        (error: unknown) => {
          if (isTierDown(error) && !call.options?.signal?.aborted && !monitor.signal.aborted) {
            monitor.reportFailure(error);
          }
          throw error;
        },
      );
  }

  /**
   * A read on tier `index` that, left unanswered past the tier's hedge delay, is also asked of the
   * next lower tier that is up: the first answer wins (an error that is not a lost tier is an
   * answer too). The slow try is not cancelled: if the tier is dying, its failure is what tells
   * the health monitor. The lower tier first takes this PC's recent writes it may lack, so a
   * hedged answer is never older than what this PC wrote.
   */
  private async hedged<T>(index: number, tried: Set<number>, call: Call<T>): Promise<T> {
    const primary = this.attempt(index, call);
    const delay = (this.monitors[index] as TierMonitor).hedgeDelayMs();
    if (!this.config.hedgeReads || this.lowerServing(index, tried) === undefined) return primary;
    if (this.scheduler.now() + delay >= call.deadline) return primary;
    const slow = await new Promise<boolean>((resolve) => {
      const handle = this.scheduler.schedule(() => resolve(true), delay);
      const settled = () => {
        handle.unsubscribe();
        resolve(false);
      };
      primary.then(settled, settled);
    });
    const lower = this.lowerServing(index, tried);
    if (!slow || lower === undefined) return primary;
    this.counts.hedgedReads++;
    const hedge = this.carryForHedge(index, lower).then(() =>
      this.attempt(lower, call).catch((error: unknown) => {
        if (isTierDown(error)) tried.add(lower);
        else if (tierCannotServe(error)) call.refused(lower, error);
        throw error;
      }),
    );
    return firstAnswer(
      primary,
      hedge.then((value) => {
        this.counts.hedgesWon++;
        return value;
      }),
    );
  }

  /** The best tier below `index` that may serve now, and that this call has not left out or lost. */
  private lowerServing(index: number, tried: ReadonlySet<number>): number | undefined {
    for (let i = index + 1; i < this.monitors.length; i++) {
      if (!tried.has(i) && isServing((this.monitors[i] as TierMonitor).state)) return i;
    }
    return undefined;
  }

  /**
   * Makes this PC's recent writes taken above `to` present on `to` before a hedged read runs
   * there (the carry of a failover, for the rows a read may show); each write once per tier.
   * Without a way to carry, or if carrying fails, the hedge does not run.
   */
  private async carryForHedge(from: number, to: number): Promise<void> {
    const carried = this.carriedForHedges[to] as WeakSet<JournalEntry>;
    const writes = this.journal
      .recent(this.scheduler.now())
      .filter((w) => TIERS.indexOf(w.tier) < to && !carried.has(w));
    if (writes.length === 0) return;
    if (!this.hooks.carryWrites) {
      throw new CvError(
        "unavailable",
        "[core] hedged read skipped: this PC's recent writes cannot be carried",
      );
    }
    await this.hooks.carryWrites(TIERS[from] as Tier, TIERS[to] as Tier, writes).catch((error: unknown) => {
      throw new CvError(
        "unavailable",
        "[core] hedged read skipped: carrying this PC's recent writes failed",
        {
          cause: error,
        },
      );
    });
    for (const write of writes) carried.add(write);
  }

  recordWrite({ tier, forgotten }: Attempt, entries: readonly Omit<JournalEntry, "at" | "tier">[]): void {
    // Made for the person signed in before the last change of person: never carried as the next one's.
    if (forgotten !== this.forgotten) return;
    const name = TIERS[tier];
    const at = this.scheduler.now();
    // The device's own writes are not journaled: it is the last tier, and its outbox sends them up.
    const journaled =
      name === "cloud" || name === "clinic" ? entries.map((entry) => ({ ...entry, tier: name, at })) : [];
    for (const entry of journaled) this.journal.add(entry);
    // Taken by a tier the router left while the call was in flight: the switch's carry ran before
    // the answer came back, so these go down now.
    if (tier < this.active) this.carry(tier, this.active, journaled);
    // Taken below the tier the router stays on (a try there failed): brought up to it now.
    else if (tier > this.active) this.lift(tier, this.active, journaled);
  }

  recordUnknown({ tier, forgotten }: Attempt, writes: readonly Omit<UnknownWrite, "tier" | "at">[]): void {
    if (forgotten !== this.forgotten) return;
    const at = this.scheduler.now();
    const name = TIERS[tier] as Tier;
    this.unknown.push(...writes.map((write) => ({ ...write, tier: name, at })));
    this.counts.unknownWrites += writes.length;
  }

  /** The active tier if it may serve and was not tried, else the next one that may, best first. */
  private pickTier(tried: ReadonlySet<number>): number | undefined {
    const ceiling = this.pinned?.index ?? 0;
    const order = [this.active, ...this.monitors.keys()];
    return order.find(
      (i) => i >= ceiling && !tried.has(i) && isServing((this.monitors[i] as TierMonitor).state),
    );
  }

  private bestTier(): number {
    const ceiling = this.pinned?.index ?? 0;
    const serving = this.monitors.findIndex((m, i) => i >= ceiling && isServing(m.state));
    return serving >= 0 ? serving : this.monitors.length - 1;
  }

  private evaluate(): void {
    if (this.closed) return;
    const now = this.scheduler.now();
    if (this.pinned && !this.pinned.byHand && this.pinned.until !== null && now >= this.pinned.until) {
      // The switches that caused the pin are spent: counting them again would re-pin at once.
      this.pinned = null;
      this.switchTimes = [];
    }
    const best = this.bestTier();
    if (best >= this.active) this.failbackSince = null;
    if (best > this.active) {
      this.switchTo(best, this.downReason(this.active));
    } else if (best < this.active) {
      this.failbackSince ??= now;
      void this.tryFailback(best);
    }
    this.publish();
  }

  private downReason(index: number): string {
    const state = (this.monitors[index] as TierMonitor).state;
    const name = (this.monitors[index] as TierMonitor).source.id;
    return `${name} stopped answering (${state.lastError ?? "no answer"})`;
  }

  /** Moves up only once the current tier has pushed what was written on it, so nothing seems to vanish. */
  private tryFailback(best: number): Promise<void> {
    if (this.failbackCheck) return this.failbackCheck;
    const check = this.checkFailback(best).finally(() => {
      if (this.failbackCheck === check) this.failbackCheck = null;
    });
    this.failbackCheck = check;
    return check;
  }

  private async checkFailback(best: number): Promise<void> {
    const current = TIERS[this.active] as Tier;
    const since = this.failbackSince ?? this.scheduler.now();
    const pending = this.hooks.pendingChanges
      ? await this.hooks.pendingChanges(current, { since }).catch(() => -1)
      : 0;
    if (this.closed || this.bestTier() !== best) return;
    const target = (this.monitors[best] as TierMonitor).source.id;
    if (pending === 0) {
      this.switchTo(best, `${target} answers again`, since);
    } else if (pending > 0) {
      this.reason = `${target} answers again; waiting for ${pending} pending changes to reach it first`;
    } else {
      this.reason = `${target} answers again; waiting to learn how many changes are still pending`;
    }
    this.publish();
  }

  /** `failbackSince`: at a failback, when the wait began (what `from` took before then is up). */
  private switchTo(index: number, reason: string, failbackSince?: number): void {
    const now = this.scheduler.now();
    const from = this.active;
    const fromTier = TIERS[from] as Tier;
    this.counts.timeInTierMs[fromTier] = (this.counts.timeInTierMs[fromTier] ?? 0) + (now - this.activeSince);
    this.active = index;
    this.activeSince = now;
    this.counts.switches++;
    this.reason = reason;
    this.switchTimes = [...this.switchTimes.filter((t) => now - t < this.config.switchWindowMs), now];
    if (this.switchTimes.length > this.config.maxSwitches && this.pinned === null) {
      const lower = Math.max(from, index);
      this.pinned = { index: lower, byHand: false, until: now + this.config.flapPinMs };
      const minutes = Math.round(this.config.flapPinMs / 60_000);
      this.reason = `the link is unstable (${this.switchTimes.length} switches in ${Math.round(this.config.switchWindowMs / 60_000)} min): staying on ${(this.monitors[lower] as TierMonitor).source.id} for ${minutes} min`;
      if (lower !== index) this.active = lower;
    }
    for (const [release, lift] of this.releases) if (lift) release();
    this.dropLifts();
    if (this.active > from && this.hooks.carryWrites) this.carry(from, this.active);
    else if (this.active < from) this.liftJournal(this.active, from, failbackSince);
    const to = this.active;
    void this.readPending(to).then(() => {
      if (this.active === to) this.publish();
    });
  }

  /** By default what the tiers above `to` took; a row written later on `to` itself is already there. */
  private carry(
    from: number,
    to: number,
    writes = this.journal.recent(this.scheduler.now()).filter((w) => TIERS.indexOf(w.tier) < to),
  ): void {
    if (writes.length === 0 || !this.hooks.carryWrites) return;
    // Calls wait for the carry, so the first read on the new tier already shows this PC's writes.
    this.hold(this.hooks.carryWrites(TIERS[from] as Tier, TIERS[to] as Tier, writes));
  }

  /**
   * A write `from` took while the router stays on `to`: calls wait until it is there too, so a
   * read on `to` does not miss it, and the status counts the device's outbox meanwhile.
   */
  private lift(from: number, to: number, writes: readonly JournalEntry[]): void {
    const device = TIERS.length - 1;
    const counted = () =>
      this.readPending(device).then(() => {
        if (this.active === to) this.publish();
      });
    if (from === device) void counted();
    if (!this.hooks.liftWrites) return;
    const running: Lift = { from, writes, failed: false };
    this.lifts.add(running);
    const lifting = this.tryLift(running, to);
    // At most `to`'s hedge delay: past it, reads go to `from`, which holds the write, until the lift
    // ends (a tier too slow to take the lift could leave them waiting up to its failover).
    const bound = (this.monitors[to] as TierMonitor).hedgeDelayMs();
    this.hold(from === device ? lifting.finally(counted) : lifting, bound, true);
  }

  /**
   * One try of a lift. A server's writes whose lift failed are tried again every probe interval
   * while the router stays on `to` and they are in the journal's time (no sync brought them up
   * sooner than that); reads go to the tier that took them meanwhile. The device's outbox is
   * counted and drained again by its own means.
   */
  private tryLift(running: Lift, to: number): Promise<void> {
    const { from, writes } = running;
    const lifting = (this.hooks.liftWrites as NonNullable<RouterHooks["liftWrites"]>)(
      TIERS[from] as Tier,
      TIERS[to] as Tier,
      writes,
    );
    void lifting.then(
      () => {
        for (const write of writes) this.liftedTo[to]?.add(write);
        this.lifts.delete(running);
        if (running.failed) this.publish();
      },
      () => {
        const oldest = Math.min(...writes.map((w) => w.at));
        const due = this.scheduler.now() + this.config.probeIntervalMs - oldest < this.config.journalTtlMs;
        if (from === TIERS.length - 1 || !due || !this.lifts.has(running)) {
          this.lifts.delete(running);
          return;
        }
        const first = !running.failed;
        running.failed = true;
        if (first) this.publish();
        running.retry = this.scheduler.schedule(() => {
          if (this.active === to && this.lifts.has(running)) void this.tryLift(running, to);
        }, this.config.probeIntervalMs);
      },
    );
    return lifting;
  }

  /**
   * At a failback to `to` from `leaving`: this PC's recent writes a tier below `to` took, which `to`
   * may still lack (the clinic server's, if it stopped before its sync sent them up), unless lifted
   * there already. The failback waited until what `leaving` took before `since` was up: not those.
   */
  private liftJournal(to: number, leaving: number, since: number | undefined): void {
    const lifted = this.liftedTo[to] as WeakSet<JournalEntry>;
    const recent = this.journal
      .recent(this.scheduler.now())
      .filter(
        (w) => !lifted.has(w) && !(TIERS.indexOf(w.tier) === leaving && since !== undefined && w.at < since),
      );
    for (let from = to + 1; from < this.monitors.length; from++) {
      const writes = recent.filter((w) => TIERS.indexOf(w.tier) === from);
      if (writes.length > 0) this.lift(from, to, writes);
    }
  }

  /** Ends every lift: its next try, and what it routes and counts. */
  private dropLifts(): void {
    for (const lift of this.lifts) lift.retry?.unsubscribe();
    this.lifts.clear();
  }

  /** Holds calls until `work` settles, at most `ms`; a lift's hold also ends at a switch. */
  private hold(work: Promise<unknown>, ms = this.config.callTimeoutMs, lift = false): void {
    let release = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const handle = this.scheduler.schedule(release, ms);
    work.then(release, release);
    this.releases.set(release, lift);
    const done = held.then(() => {
      handle.unsubscribe();
      this.holds.delete(done);
      this.releases.delete(release);
    });
    this.holds.add(done);
  }

  private async reconcile(index: number): Promise<void> {
    const tier = TIERS[index] as Tier;
    const due = this.unknown.filter((write) => write.tier === tier);
    if (due.length === 0) return;
    this.unknown = this.unknown.filter((write) => write.tier !== tier);
    const source = (this.monitors[index] as TierMonitor).source;
    for (const [position, write] of due.entries()) {
      const row = await source
        .table(write.table)
        .get(write.id, { timeoutMs: this.config.callTimeoutMs })
        .catch(() => undefined);
      if (row === undefined) {
        // The tier stopped answering: this write and every one not looked up yet wait for the next time.
        this.unknown.push(...due.slice(position));
        return;
      }
      const version = (row as { version?: string } | null)?.version ?? null;
      const outcome: UnknownWriteOutcome =
        write.op === "delete"
          ? row === null
            ? "landed"
            : "not_landed"
          : version === write.version
            ? "landed"
            : row === null
              ? "not_landed"
              : "superseded";
      this.hooks.onReconciled?.(write, outcome);
    }
  }

  private tick(): void {
    this.timer = this.scheduler.schedule(async () => {
      if (this.closed) return;
      await this.readPending(this.active);
      if (this.active !== TIERS.length - 1) await this.readPending(TIERS.length - 1);
      this.evaluate();
      this.tick();
    }, this.config.failbackCheckIntervalMs);
  }

  private async readPending(index: number): Promise<void> {
    if (!this.hooks.pendingChanges) return;
    const tier = TIERS[index] as Tier;
    const count = await this.hooks.pendingChanges(tier).catch(() => undefined);
    if (count !== undefined) this.pending.set(tier, count);
  }

  private publish(): void {
    if (this.closed) return;
    this.status.next(this.snapshot());
  }

  /**
   * What has not reached the cloud yet, as far as this PC knows: the active tier's count and, above
   * the device, this PC's outbox (writes a lower tier took while the router stayed up, or made
   * during a failback's wait), which no server holds yet. Never the count of a tier it left.
   */
  private pendingShown(): number {
    const device = TIERS[TIERS.length - 1] as Tier;
    const active = TIERS[this.active] as Tier;
    const own = this.pending.get(active) ?? 0;
    if (active === device) return own;
    let unlifted = 0;
    for (const lift of this.lifts) if (lift.failed) unlifted += lift.writes.length;
    return own + (this.pending.get(device) ?? 0) + unlifted;
  }

  private snapshot(): ConnectionStatus {
    return buildStatus({
      monitors: this.monitors,
      active: this.active,
      pending: this.pendingShown(),
      lastSyncAt: this.hooks.lastSyncAt?.() ?? null,
      isSyncing: this.hooks.isSyncing?.() ?? false,
      reason: this.reason,
      pinned: this.pinned ? (TIERS[this.pinned.index] as Tier) : null,
      now: this.scheduler.now(),
      previous: this.status?.value,
    });
  }
}
