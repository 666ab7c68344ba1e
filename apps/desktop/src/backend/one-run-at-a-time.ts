import { defer, type MonoTypeOperatorFunction, throttle } from "rxjs";

/**
 * Runs `work` for each emission, one run at a time. Unlike `exhaustMap`, an emission that comes
 * while a run is in flight is not dropped: every emission of a run collapses into one more run
 * right after it. A wake-up that lands during a refresh (another PC's booking, seconds after this
 * PC got to the clinic server and started refreshing) is thus served at once, not at the next
 * periodic refresh. `work` handles its own errors: a rejection would end the stream.
 */
export function oneRunAtATime<T>(work: () => Promise<void>): MonoTypeOperatorFunction<T> {
  return throttle(() => defer(work), { leading: true, trailing: true });
}
