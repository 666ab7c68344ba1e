import { CvError } from "./errors.js";

/** Per-call options every source accepts. */
export interface CallOptions {
  /** Aborts the call; the promise rejects with `timeout` (deadline) or `unavailable` (caller abort). */
  signal?: AbortSignal;
  /** Deadline for this call in milliseconds. Overrides the source's default. */
  timeoutMs?: number;
}

/**
 * Runs `work` with a signal that fires at the deadline, and rejects at the
 * deadline even if `work` ignores the signal. Drivers can hang before they look
 * at a signal (supabase-js on its auth lock, `postgres` on a half-open socket),
 * so the deadline is enforced outside them.
 */
export async function withDeadline<T>(
  label: string,
  options: CallOptions | undefined,
  defaultTimeoutMs: number,
  work: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const timeoutMs = options?.timeoutMs ?? defaultTimeoutMs;
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let onCallerAbort: (() => void) | undefined;
  const stopped = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const error = new CvError("timeout", `${label} timed out after ${timeoutMs} ms`);
      controller.abort(error);
      reject(error);
    }, timeoutMs);
    const caller = options?.signal;
    if (caller) {
      onCallerAbort = () => {
        const error = new CvError("unavailable", `${label} was cancelled by the caller`, {
          cause: caller.reason,
        });
        controller.abort(error);
        reject(error);
      };
      if (caller.aborted) onCallerAbort();
      else caller.addEventListener("abort", onCallerAbort, { once: true });
    }
  });
  try {
    return await Promise.race([work(controller.signal), stopped]);
  } finally {
    clearTimeout(timer);
    if (onCallerAbort) options?.signal?.removeEventListener("abort", onCallerAbort);
  }
}
