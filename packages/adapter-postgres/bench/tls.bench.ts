/**
 * What TLS costs a PC's call to the clinic server (issue 14: the LAN is encrypted by default): the
 * same reads and the same write on one PostgreSQL with ssl on, through two sources that differ only
 * in `ssl` — `verify-full` against the clinic's CA, and `disable` — interleaved one call each in
 * turn, medians compared (see overhead.bench.ts why). Both pools are warm: TLS's handshake is paid
 * once per connection, its cost per call is the encryption. Then the handshake itself: a fresh
 * connection's first call, each way.
 *
 *   npm run bench -w @centrovision/adapter-postgres        CV_BENCH_ROUNDS=5000 for more samples
 */
import { applyMigrations, startPostgres } from "@centrovision/testkit";
import { createFixtures } from "@centrovision/testkit/contract";
import { createPostgresSource } from "../src/index.js";
import { compare, report } from "./interleave.js";

const ROUNDS = Number(process.env.CV_BENCH_ROUNDS ?? 3_000);
const CONNECTS = 50;
const fixtures = createFixtures();

const server = await startPostgres({ tls: true });
try {
  const url = await server.createDatabase("bench_tls");
  await applyMigrations(url);
  const caFile = server.tls?.caFile as string;
  const open = (tls: boolean) =>
    createPostgresSource({ url, max: 5, ssl: tls ? { mode: "verify-full", caFile } : { mode: "disable" } });
  const [encrypted, plain] = [open(true), open(false)];
  const branch = await plain.table("branches").insert(fixtures.branch());
  const rows = Array.from({ length: 1_000 }, () => fixtures.patient(branch.id, { document_id: null }));
  await plain.table("patients").upsertMany(rows, { timeoutMs: 60_000 });
  let next = 0;
  const id = () => (rows[next++ % rows.length] as { id: string }).id;

  console.log(
    `TLS (verify-full) vs plain to the same PostgreSQL, median of ${ROUNDS} interleaved calls (${new Date().toISOString()})\n`,
  );
  report(
    "get: one patient by id, TLS",
    "plain",
    await compare(
      () => encrypted.table("patients").get(id()),
      () => plain.table("patients").get(id()),
      ROUNDS,
    ),
  );
  report(
    "list: a page of 50 patients, TLS",
    "plain",
    await compare(
      () => encrypted.table("patients").list({ where: { branch_id: branch.id }, limit: 50 }),
      () => plain.table("patients").list({ where: { branch_id: branch.id }, limit: 50 }),
      ROUNDS,
    ),
  );
  report(
    "update: one patient's phone, TLS",
    "plain",
    await compare(
      () => encrypted.table("patients").update(id(), { phone: "+52 55 1234 5678" }),
      () => plain.table("patients").update(id(), { phone: "+52 55 8765 4321" }),
      ROUNDS,
    ),
  );
  await Promise.all([encrypted.close(), plain.close()]);

  // A fresh connection each time: the probe of a new source (connect, handshake, `select 1`).
  report(
    "connect: a new connection's first call, TLS",
    "plain",
    await compare(
      async () => {
        const source = open(true);
        await source.probe();
        await source.close();
      },
      async () => {
        const source = open(false);
        await source.probe();
        await source.close();
      },
      CONNECTS,
    ),
  );
} finally {
  await server.stop();
}
