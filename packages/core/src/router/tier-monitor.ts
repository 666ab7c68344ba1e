import {
  asyncScheduler,
  BehaviorSubject,
  catchError,
  defer,
  from,
  map,
  type Observable,
  of,
  race,
  repeat,
  type SchedulerLike,
  Subject,
  type Subscription,
  switchMap,
  take,
  tap,
  timeout,
  timer,
} from "rxjs";
import type { DataSource } from "../data-source.js";
import { CvError, isCvError } from "../errors.js";
import { type HealthEvent, type HealthState, initialHealth, nextHealth, probeDelayMs } from "./health.js";
import type { RouterConfig } from "./router-config.js";

/** Read latencies kept per tier for the hedge delay, and how many it needs before trusting them. */
const LATENCY_SAMPLES = 100;
const MIN_LATENCY_SAMPLES = 10;

function describeError(error: unknown): string {
  if (error instanceof CvError) return `${error.code}: ${error.message}`;
  return error instanceof Error ? `unknown: ${error.name}` : "unknown";
}

/**
 * Watches one tier: probes it forever, one probe at a time (`repeat` waits for
 * the previous probe to finish, so a hanging tier never piles probes up), each
 * with its own deadline, and folds probe results and real call failures into
 * its {@link HealthState}.
 */
export class TierMonitor {
  private readonly state$: BehaviorSubject<HealthState>;
  private readonly kick$ = new Subject<void>();
  private subscription: Subscription | undefined;
  /** Aborts calls in flight on this tier when it is found down, so they can move on at once. */
  private inFlight = new AbortController();
  /** The last reads this tier answered, in ms, oldest first. */
  private readonly latencies: number[] = [];

  constructor(
    readonly source: DataSource,
    private readonly config: RouterConfig,
    private readonly scheduler: SchedulerLike = asyncScheduler,
    private readonly random: () => number = Math.random,
  ) {
    this.state$ = new BehaviorSubject(initialHealth(config));
  }

  get state(): HealthState {
    return this.state$.value;
  }

  get changes$(): Observable<HealthState> {
    return this.state$.asObservable();
  }

  /** Signal that fires when this tier is found down. */
  get signal(): AbortSignal {
    return this.inFlight.signal;
  }

  start(): void {
    this.subscription ??= defer(() => this.probeOnce())
      .pipe(
        repeat({
          delay: () =>
            race(
              timer(probeDelayMs(this.state, this.config, this.random), this.scheduler),
              // A real call just failed: confirm or clear it at the suspect pace, not a full interval later.
              this.kick$.pipe(
                take(1),
                switchMap(() => timer(this.config.suspectIntervalMs, this.scheduler)),
              ),
            ),
        }),
      )
      .subscribe();
  }

  /** A real call on this tier failed with `unavailable`/`timeout`: it counts like a failed probe. */
  reportFailure(error: unknown): void {
    this.apply({ kind: "failure", at: this.scheduler.now(), error: describeError(error), fromProbe: false });
    this.kick$.next();
  }

  /** A read this tier answered, and how long it took. */
  recordLatency(ms: number): void {
    this.latencies.push(ms);
    if (this.latencies.length > LATENCY_SAMPLES) this.latencies.shift();
  }

  /**
   * How long a read waits on this tier before it is also asked of a lower one: the configured
   * multiple of the recent p95, within the floor and the cap. Until enough reads are known, the cap.
   */
  hedgeDelayMs(): number {
    const { hedgeFloorMs, hedgeMaxMs, hedgeLatencyFactor } = this.config;
    if (this.latencies.length < MIN_LATENCY_SAMPLES) return hedgeMaxMs;
    const sorted = [...this.latencies].sort((a, b) => a - b);
    const p95 = sorted[Math.floor(0.95 * (sorted.length - 1))] as number;
    return Math.min(hedgeMaxMs, Math.max(hedgeFloorMs, hedgeLatencyFactor * p95));
  }

  stop(): void {
    this.subscription?.unsubscribe();
    this.state$.complete();
    this.kick$.complete();
  }

  private probeOnce(): Observable<HealthEvent> {
    const started = this.scheduler.now();
    const controller = new AbortController();
    return from(this.source.probe({ timeoutMs: this.config.probeTimeoutMs, signal: controller.signal })).pipe(
      // The source enforces the deadline itself; this guards against one that does not.
      timeout({ first: this.config.probeTimeoutMs + 50, scheduler: this.scheduler }),
      map(
        (): HealthEvent => ({
          kind: "success",
          at: this.scheduler.now(),
          latencyMs: this.scheduler.now() - started,
        }),
      ),
      catchError((error: unknown) => {
        controller.abort();
        // A 401/403 proves the tier answers: the key or session is wrong, which failing over
        // would hide. The tier stays up and its status carries the error for someone to fix.
        if (isCvError(error) && error.code === "unauthorized") {
          return of<HealthEvent>({
            kind: "success",
            at: this.scheduler.now(),
            latencyMs: this.scheduler.now() - started,
            warning: describeError(error),
          });
        }
        return of<HealthEvent>({
          kind: "failure",
          at: this.scheduler.now(),
          error: describeError(error),
          fromProbe: true,
        });
      }),
      tap((event) => this.apply(event)),
    );
  }

  private apply(event: HealthEvent): void {
    const before = this.state;
    const after = nextHealth(before, event, this.config);
    if (before.health !== "down" && after.health === "down") {
      this.inFlight.abort(new CvError("unavailable", `[core] ${this.source.id} stopped answering`));
      this.inFlight = new AbortController();
    }
    this.state$.next(after);
  }
}
