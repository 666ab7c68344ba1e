import { CvError } from "@centrovision/core";

export interface Timed<T> {
  readonly ms: number;
  readonly value?: T;
  readonly error?: CvError;
}

/** Awaits `promise` and measures it; a rejection must be a `CvError` (no raw driver error escapes). */
export async function timed<T>(promise: Promise<T>): Promise<Timed<T>> {
  const started = performance.now();
  try {
    const value = await promise;
    return { ms: performance.now() - started, value };
  } catch (error) {
    if (!(error instanceof CvError)) throw error;
    return { ms: performance.now() - started, error };
  }
}
