/**
 * Wait before the next attempt after `failures` failed cycles in a row: doubling from `minMs`,
 * capped at `maxMs`, the upper half randomised so that engines restarted together (a power cut
 * at the clinic) do not retry in lockstep against a cloud that just came back.
 */
export function backoffDelay(failures: number, minMs: number, maxMs: number, random: () => number): number {
  const ceiling = Math.min(maxMs, minMs * 2 ** Math.min(Math.max(failures - 1, 0), 30));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}
