/** Shared by the adapter's benches: interleaved timing of two ways of doing the same call. */

import { reportFigure } from "@centrovision/testkit";

export type Op = () => Promise<unknown>;

export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
export const p95 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * 0.95)] as number;
export const us = (ms: number) => `${(ms * 1000).toFixed(0).padStart(5)} µs`;

export interface Comparison {
  readonly candidate: number;
  readonly baseline: number;
  readonly candidateP95: number;
  readonly baselineP95: number;
}

/**
 * Median and p95 of `candidate` and `baseline`, called alternately (which one goes first swaps
 * every round) after `warmup` rounds, so drift on a shared machine hits both alike.
 */
export async function compare(
  candidate: Op,
  baseline: Op,
  rounds: number,
  warmup = 300,
): Promise<Comparison> {
  for (let i = 0; i < warmup; i++) {
    await baseline();
    await candidate();
  }
  const times: [number[], number[]] = [[], []];
  const ops = [candidate, baseline];
  for (let i = 0; i < rounds; i++) {
    for (const side of i % 2 === 0 ? [0, 1] : [1, 0]) {
      const started = performance.now();
      await (ops[side] as Op)();
      times[side]?.push(performance.now() - started);
    }
  }
  const [mine, theirs] = times;
  return {
    candidate: median(mine),
    baseline: median(theirs),
    candidateP95: p95(mine),
    baselineP95: p95(theirs),
  };
}

/**
 * Reports the candidate's median against the baseline's (named `reference`), with their ratio and
 * its goal `atMost` if any, then prints both p95s.
 */
export function report(figure: string, reference: string, result: Comparison, atMost?: number): void {
  reportFigure({
    figure,
    unit: "µs",
    measured: result.candidate * 1000,
    reference: { label: reference, value: result.baseline * 1000 },
    ratio: result.candidate / result.baseline,
    ...(atMost !== undefined && { goal: { of: "ratio", atMost } }),
  });
  console.log(`  p95 ${us(result.candidateP95).trim()} vs ${us(result.baselineP95).trim()}`);
}
