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
import {
  compareAlternately,
  createLink,
  failsWith,
  type Link,
  startLocalSupabase,
} from "@centrovision/testkit";
import { createFixtures } from "@centrovision/testkit/contract";
import { createSupabaseSource } from "../src/index.js";

const CALLS = 200;
const DEADLINES = 15;
const DEADLINE_MS = 200;

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
  await compareAlternately(
    "refused call",
    "a call that works",
    () => failsWith(refused.table("branches").get(branch.id), "unavailable"),
    () => works.table("branches").get(branch.id),
    CALLS,
    20,
  );
  await compareAlternately(
    `call deadline of ${DEADLINE_MS} ms, blackholed`,
    "a timer",
    () => failsWith(held.table("branches").get(branch.id, { timeoutMs: DEADLINE_MS }), "timeout"),
    timer,
    DEADLINES,
    2,
  );
  await compareAlternately(
    `probe deadline of ${DEADLINE_MS} ms, blackholed`,
    "a timer",
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
