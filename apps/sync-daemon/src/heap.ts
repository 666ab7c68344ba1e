import { setFlagsFromString } from "node:v8";

/**
 * V8 lets its old generation grow by a factor it derives from the collector's speed, up to 4×
 * the live size, before the next full collection. A sync's pages (the reply's text, its rows, the
 * apply's argument: 4–5 MB each, two pages in flight) outlive a scavenge and land there, so an
 * initial sync peaked at 149–155 MB for a live heap of a few MB over the 63 MB the process starts
 * with. At 1.5× the peak was 113 MB at the same speed (packages/sync-engine/bench/sync.bench.ts).
 * It caps nothing: a larger page still fits, it is only collected sooner.
 */
export const HEAP_GROWING_FLAG = "--heap-growing-percent=50";

/**
 * Sets {@link HEAP_GROWING_FLAG} for this process. Node refuses the flag in NODE_OPTIONS, and the
 * daemon starts from several launchers (the package's, a checkout's bin, npx): set here, it holds
 * for each. V8 reads it whenever it sizes the heap after a collection, so setting it at start-up
 * works as the command-line flag does; an unknown flag would be ignored, not fatal
 * (test/heap.test.ts checks this node knows it).
 */
export function tuneHeapForSync(): void {
  setFlagsFromString(HEAP_GROWING_FLAG);
}
