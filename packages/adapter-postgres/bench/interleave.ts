/** Shared by the adapter's benches: interleaved timing of two ways of doing the same call. */

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

/** One line: both medians and p95s, the ratio, and the verdict against `target` (none: for comparison). */
export function report(label: string, result: Comparison, target?: number, width = 44): void {
  const ratio = result.candidate / result.baseline;
  const verdict =
    target === undefined ? "(for comparison)" : ratio <= target ? `ok (≤ ${target}×)` : `OVER ${target}×`;
  console.log(
    `${label.padEnd(width)} ${us(result.candidate)} vs ${us(result.baseline)}  ` +
      `p95 ${us(result.candidateP95)} vs ${us(result.baselineP95)}  ${ratio.toFixed(2)}×  ${verdict}`,
  );
}
