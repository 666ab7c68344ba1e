/** mulberry32: a tiny seeded PRNG, so a failing seed replays the same run. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

export function pick<T>(random: () => number, items: readonly T[]): T {
  const item = items[Math.floor(random() * items.length)];
  if (item === undefined) throw new Error("pick from an empty list");
  return item;
}

/**
 * Seeds for the randomized tests: a fixed list in CI, or CV_SYNC_SEEDS=<n> (n seeds from 1) or
 * CV_SYNC_SEEDS=<a,b,c> for a soak or to replay a failure.
 */
export function testSeeds(fixed: number): number[] {
  const given = process.env.CV_SYNC_SEEDS;
  if (!given) return Array.from({ length: fixed }, (_, i) => i + 1);
  if (/^\d+$/.test(given)) return Array.from({ length: Number(given) }, (_, i) => i + 1);
  return given.split(",").map(Number);
}
