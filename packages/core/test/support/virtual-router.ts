import { vi } from "vitest";
import { createFailoverRouter, type RouterConfigInput, type RouterHooks } from "../../src/index.js";
import { createFaultySource } from "./faulty-source.js";

/** A router over three memory tiers behind switchable faults (cloud, clinic, device), its jitter off. */
export function threeTiers(hooks?: RouterHooks, config?: RouterConfigInput) {
  const cloud = createFaultySource("cloud");
  const clinic = createFaultySource("clinic");
  const device = createFaultySource("device");
  const router = createFailoverRouter({ sources: [cloud, clinic, device], hooks, config, random: () => 0 });
  return { cloud, clinic, device, router };
}

/** Advances virtual time in small steps until `done()` holds; returns the time it took. */
export async function waitFor(done: () => boolean, maxMs = 120_000, stepMs = 10): Promise<number> {
  let elapsed = 0;
  while (!done()) {
    if (elapsed >= maxMs) throw new Error(`condition not met within ${maxMs} ms`);
    await vi.advanceTimersByTimeAsync(stepMs);
    elapsed += stepMs;
  }
  return elapsed;
}

/** Settles `call` under virtual time; returns its outcome and how long it took. */
export async function settle<T>(call: Promise<T>): Promise<{ value?: T; error?: unknown; took: number }> {
  let outcome: { value?: T; error?: unknown } | undefined;
  call.then(
    (value) => (outcome = { value }),
    (error: unknown) => (outcome = { error }),
  );
  const took = await waitFor(() => outcome !== undefined, 30_000, 5);
  return { ...outcome, took };
}
