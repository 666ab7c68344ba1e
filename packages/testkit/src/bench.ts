import { type ErrorCode, isCvError } from "@centrovision/core";

/** Resolves once `call` fails with `code`; any other outcome would mean a bench timed the wrong thing. */
export async function failsWith(call: Promise<unknown>, code: ErrorCode): Promise<void> {
  try {
    await call;
  } catch (error) {
    if (isCvError(error, code)) return;
    throw error;
  }
  throw new Error(`[testkit] expected ${code}, the call succeeded`);
}

/**
 * Times `candidate` and `baseline` called alternately (so both meet the same machine load) for
 * `rounds` rounds after `warmup`, and prints `label`, the p50/p95 of each in ms and the p50 ratio.
 */
export async function compareAlternately(
  label: string,
  candidate: () => Promise<unknown>,
  baseline: () => Promise<unknown>,
  rounds: number,
  warmup: number,
): Promise<void> {
  const times: [number[], number[]] = [[], []];
  for (let round = 0; round < warmup + rounds; round++) {
    for (const side of round % 2 === 0 ? [0, 1] : [1, 0]) {
      const started = performance.now();
      await (side === 0 ? candidate : baseline)();
      if (round >= warmup) times[side]?.push(performance.now() - started);
    }
  }
  const [mine, theirs] = times.map((list) => list.sort((a, b) => a - b)) as [number[], number[]];
  const at = (sorted: number[], p: number) => sorted[Math.floor(p * sorted.length)] ?? Number.NaN;
  const fmt = (sorted: number[]) => `${at(sorted, 0.5).toFixed(2)}/${at(sorted, 0.95).toFixed(2)}`.padEnd(22);
  console.log(
    `${label.padEnd(40)}${fmt(mine)}${fmt(theirs)}${(at(mine, 0.5) / at(theirs, 0.5)).toFixed(2)}×`,
  );
}
