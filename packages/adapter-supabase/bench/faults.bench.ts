/**
 * How fast the adapter gives up on a cloud it cannot use — timed here, not asserted in
 * test/faults.test.ts, where a loaded machine must not fail a correctness test. Each figure has a
 * reference measured in the same run, the two timed alternately (order flipped every round) so
 * drift in the machine's load hits both:
 * - refused: a call through a link that refuses, against the same call through a link that passes.
 *   A refusal should cost no more than a call that works: postgrest-js retries are off, so nothing
 *   waits (its first retry would come after 1 s).
 * - deadline: a call, and a probe, held by a blackholed link, against a plain timer of the same
 *   length. The deadline is such a timer: the ratio is what the call adds to it (below 1: it fired
 *   early).
 *
 *   npm run bench                 (in packages/adapter-supabase)
 */
import { type ErrorCode, isCvError } from "@centrovision/core";
import { createLink, type Link, startLocalSupabase } from "@centrovision/testkit";
import { createFixtures } from "@centrovision/testkit/contract";
import { createSupabaseSource } from "../src/index.js";

const CALLS = 200;
const DEADLINES = 15;
const DEADLINE_MS = 200;

type Op = () => Promise<unknown>;

/** Resolves once `call` fails with `code`; any other outcome would mean timing the wrong thing. */
async function failsWith(call: Promise<unknown>, code: ErrorCode): Promise<void> {
  try {
    await call;
  } catch (error) {
    if (isCvError(error, code)) return;
    throw error;
  }
  throw new Error(`expected ${code}, the call succeeded`);
}

/** Prints p50/p95 of `candidate` and `baseline`, called alternately after `warmup` rounds, and the p50 ratio. */
async function compare(label: string, candidate: Op, baseline: Op, rounds: number, warmup: number) {
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
    `${label.padEnd(32)}${fmt(mine)}${fmt(theirs)}${(at(mine, 0.5) / at(theirs, 0.5)).toFixed(2)}×`,
  );
}

const stack = await startLocalSupabase({ log: () => {} });
const [passing, refusing, blackholed] = (await Promise.all(
  [1, 2, 3].map(() => createLink({ target: new URL(stack.url).host })),
)) as [Link, Link, Link];
try {
  await refusing.refuse();
  await blackholed.blackhole();
  const open = (link: Link) => createSupabaseSource({ url: link.url(stack.url), key: stack.serviceRoleKey });
  const [works, refused, held] = [open(passing), open(refusing), open(blackholed)];
  const branch = await works.table("branches").insert(createFixtures().branch());
  const timer = () => new Promise((resolve) => setTimeout(resolve, DEADLINE_MS));

  console.log(
    `adapter-supabase failing fast through the testkit link — ${CALLS} calls and ${DEADLINES} deadlines of ` +
      `${DEADLINE_MS} ms each way, Node ${process.version}`,
  );
  console.log(
    `${"".padEnd(32)}${"failing p50/p95 ms".padEnd(22)}${"reference p50/p95 ms".padEnd(22)}p50 ratio`,
  );
  await compare(
    "refused vs a call that works",
    () => failsWith(refused.table("branches").get(branch.id), "unavailable"),
    () => works.table("branches").get(branch.id),
    CALLS,
    20,
  );
  await compare(
    "call deadline vs a timer",
    () => failsWith(held.table("branches").get(branch.id, { timeoutMs: DEADLINE_MS }), "timeout"),
    timer,
    DEADLINES,
    2,
  );
  await compare(
    "probe deadline vs a timer",
    () => failsWith(held.probe({ timeoutMs: DEADLINE_MS }), "timeout"),
    timer,
    DEADLINES,
    2,
  );
  await Promise.all([works.close(), refused.close(), held.close()]);
} finally {
  await Promise.all([passing.close(), refusing.close(), blackholed.close()]);
  await stack.stop();
}
