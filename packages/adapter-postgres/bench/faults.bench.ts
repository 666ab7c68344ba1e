/**
 * How fast the adapter gives up on a clinic server it cannot use — timed here, not asserted in
 * test/faults.test.ts, where a loaded machine must not fail a correctness test. Each figure has a
 * reference measured in the same run:
 * - refused: a new source's first call through a link that refuses, against the same call through
 *   a link that passes (connect, authenticate, answer). A refusal should cost no more than a call
 *   that works, and stay far below connectTimeoutMs, which it must not wait out.
 * - deadline: a call, and a probe, held by a blackholed link, against a plain timer of the same
 *   length. The deadline is such a timer: the ratio is what the call adds to it (below 1: it fired
 *   early).
 *
 *   npm run bench -w @centrovision/adapter-postgres
 */
import { applyMigrations, createLink, failsWith, type Link, startPostgres } from "@centrovision/testkit";
import { createFixtures } from "@centrovision/testkit/contract";
import { createPostgresSource } from "../src/index.js";
import { type Comparison, compare, median, p95, report } from "./interleave.js";

const FIRST_CALLS = 100;
const DEADLINES = 15;
const DEADLINE_MS = 200;
const CONNECT_TIMEOUT_MS = 2_000;

const server = await startPostgres();
const [passing, refusing, blackholed] = (await Promise.all(
  [1, 2, 3].map(() => createLink({ target: { host: "127.0.0.1", port: server.port } })),
)) as [Link, Link, Link];
try {
  const url = await server.createDatabase("bench_faults");
  await applyMigrations(url);
  await refusing.refuse();
  await blackholed.blackhole();
  const open = (link: Link) =>
    createPostgresSource({ url: link.url(url), connectTimeoutMs: CONNECT_TIMEOUT_MS });
  const direct = createPostgresSource({ url });
  const branch = await direct.table("branches").insert(createFixtures().branch());
  await direct.close();

  console.log(
    `adapter-postgres failing fast through the testkit link: medians of ${FIRST_CALLS} first calls and ` +
      `${DEADLINES} deadlines of ${DEADLINE_MS} ms each way, interleaved (${new Date().toISOString()})\n`,
  );

  // A new source each time, closed outside the timing (closing is not what a refusal costs).
  const times: [number[], number[]] = [[], []];
  for (let round = 0; round < FIRST_CALLS; round++) {
    for (const side of round % 2 === 0 ? [0, 1] : [1, 0]) {
      const source = open(side === 0 ? refusing : passing);
      const started = performance.now();
      const call = source.table("branches").get(branch.id);
      await (side === 0 ? failsWith(call, "unavailable") : call);
      times[side]?.push(performance.now() - started);
      await source.close();
    }
  }
  const [refused, connected] = times;
  const firstCalls: Comparison = {
    candidate: median(refused),
    baseline: median(connected),
    candidateP95: p95(refused),
    baselineP95: p95(connected),
  };
  report("refused: a new source's first call", "a first call that connects", firstCalls);
  const share = (100 * firstCalls.candidateP95) / CONNECT_TIMEOUT_MS;
  console.log(`  refused p95 is ${share.toFixed(1)} % of connectTimeoutMs (${CONNECT_TIMEOUT_MS} ms)`);

  const timer = () => new Promise((resolve) => setTimeout(resolve, DEADLINE_MS));
  const held = open(blackholed);
  report(
    `call deadline of ${DEADLINE_MS} ms, blackholed`,
    "a timer",
    await compare(
      () => failsWith(held.table("branches").get(branch.id, { timeoutMs: DEADLINE_MS }), "timeout"),
      timer,
      DEADLINES,
      2,
    ),
  );
  report(
    `probe deadline of ${DEADLINE_MS} ms, blackholed`,
    "a timer",
    await compare(() => failsWith(held.probe({ timeoutMs: DEADLINE_MS }), "timeout"), timer, DEADLINES, 2),
  );
  await blackholed.pass();
  await held.close();
} finally {
  await Promise.all([passing.close(), refusing.close(), blackholed.close()]);
  await server.stop();
}
