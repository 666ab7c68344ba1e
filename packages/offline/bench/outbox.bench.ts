/**
 * The PC's offline tier, measured in one run on this machine:
 *
 * 1. Durable outbox write latency (p50/p95) with a ~50 MB local database (target p95 ≤ 10 ms),
 *    against a plain durable write to the same file (no outbox) — both fsync'd before resolving.
 * 2. Draining 5,000 offline writes to the clinic server through cv_client_apply, as a PC does it (a
 *    centrovision_app login acting as its signed-in person, under the row-level policies), as a
 *    ratio of the sync engine's steady-state throughput between two PostgreSQL nodes on the same
 *    server: the medians of rounds taking turns (3; 5 with --long).
 *
 *   npm run bench           (in packages/sync-engine; runs sync.bench.ts too)
 *   node --conditions=@centrovision/source --import tsx bench/outbox.bench.ts
 *   CV_BENCH_DIR=/path picks the disk of the local file.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createPostgresSource } from "@centrovision/adapter-postgres";
import { createSqliteSource } from "@centrovision/adapter-sqlite";
import { createPostgresPeer, createSyncEngine } from "@centrovision/sync-engine";
import {
  clinicSession,
  createNodeDatabase,
  longOrShort,
  reportFigure,
  startPostgres,
} from "@centrovision/testkit";
import postgres from "postgres";
import { createClientApplier, createOfflineTier } from "../src/index.js";

const TARGET_BYTES = 50 * 1024 * 1024;
const SAMPLES = 500;
const DRAIN_WRITES = 5_000;

const log = (line: string) => process.stdout.write(`${line}\n`);
const percentile = (values: readonly number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? Number.NaN;
};
const ms = (value: number) => `${value.toFixed(2)} ms`;

const patient = (branchId: string, n: number) => ({
  id: randomUUID(),
  branch_id: branchId,
  first_name: `Paciente ${n}`,
  last_name: "Sin Conexión",
  birth_date: "1975-06-15",
  sex: "unknown" as const,
  phone: "55 0000 0000",
  address: "Calle Benito Juárez 123, Col. Centro, Ciudad de México",
});

async function timed(count: number, write: (n: number) => Promise<unknown>): Promise<number[]> {
  const samples: number[] = [];
  for (let n = 0; n < count; n++) {
    const started = performance.now();
    await write(n);
    samples.push(performance.now() - started);
  }
  return samples;
}

const dir = await mkdtemp(join(process.env.CV_BENCH_DIR ?? tmpdir(), "cv-outbox-bench-"));
const server = await startPostgres();
try {
  // 1. Outbox write latency on a 50 MB file.
  const path = join(dir, "pc.cvdb");
  const key = randomBytes(32);
  const store = await createSqliteSource({ path, key, timeoutMs: 120_000 });
  const branchId = randomUUID();
  await store
    .table("branches")
    .insert({ id: branchId, code: "BENCH-PC", name: "Bench", address: "Av. Reforma 1" });
  log("seeding a ~50 MB local database (the cached copy)…");
  for (let n = 0; (await stat(path)).size < TARGET_BYTES; n += 2_000) {
    await store
      .table("patients")
      .upsertMany(Array.from({ length: 2_000 }, (_, i) => patient(branchId, n + i)));
    if (n % 20_000 === 0) await store.snapshot();
  }
  await store.snapshot();
  const size = (await stat(path)).size;
  const plain = await timed(SAMPLES, (n) => store.table("patients").insert(patient(branchId, n)));
  const tier = createOfflineTier({ store, scope: { branchId } });
  const outbox = await timed(SAMPLES, (n) => tier.source.table("patients").insert(patient(branchId, n)));
  const p95 = percentile(outbox, 0.95);
  log("");
  log(`durable write with a ${(size / 1024 / 1024).toFixed(0)} MB local database, ${SAMPLES} writes each`);
  log(
    `  plain write (row, fsync)            p50 ${ms(percentile(plain, 0.5))}   p95 ${ms(percentile(plain, 0.95))}`,
  );
  log(`  offline write (row + outbox, fsync) p50 ${ms(percentile(outbox, 0.5))}   p95 ${ms(p95)}`);
  reportFigure({
    figure: `durable offline write (row + outbox, fsync), ${(size / 1024 / 1024).toFixed(0)} MB file, p95`,
    unit: "ms",
    measured: p95,
    reference: { label: "plain durable write, p95", value: percentile(plain, 0.95) },
    ratio: p95 / percentile(plain, 0.95),
    goal: { of: "measured", atMost: 10 },
  });
  await tier.close();

  // 2. Drain vs the sync engine's steady state.
  const [clinic, peer] = [
    await createNodeDatabase(server, "clinic", branchId),
    await createNodeDatabase(server, "peer", branchId),
  ];
  await clinic.sql.unsafe(`
    do $$ begin create role cv_outbox_bench login password 'bench' in role centrovision_app;
    exception when duplicate_object then null; end $$`);
  const appUrl = new URL(clinic.url);
  appUrl.username = "cv_outbox_bench";
  appUrl.password = "bench";
  // The PC's receptionist, signed in: a profile and a membership at the bench branch (as the sync
  // brings them from the cloud) and a clinic session minted with the server's own key.
  const person = randomUUID();
  await clinic.sql`insert into profiles (id, full_name) values (${person}, 'Recepción Bench')`;
  await clinic.sql`insert into user_branches (id, user_id, branch_id) values (${randomUUID()}, ${person}, ${branchId})`;
  const token = await clinicSession(clinic.url, { userId: person });
  const session = () => token;

  // Peers over clients of their own (`sql`), not `url`: a peer built from a URL also LISTENs for
  // the clinic server's changes, and the engine would start cycles of its own on the bench's
  // inserts and during the drain; each figure must time one cycle or one drain alone.
  const node = (url: string) =>
    createPostgresPeer({
      sql: () => postgres(url, { max: 3, onnotice: () => {}, fetch_types: false }),
      timeoutMs: 60_000,
    });
  const engine = createSyncEngine({
    local: node(peer.url),
    remote: node(clinic.url),
    intervalMs: 3_600_000,
    pageSize: 2_000,
  });
  await engine.syncNow();
  const pc = createOfflineTier({
    store: await createSqliteSource({ path: join(dir, "drain.cvdb"), key }),
    scope: { branchId },
  });
  const refreshSource = createPostgresSource({ url: appUrl.href, session });
  await pc.refresh(refreshSource);
  await refreshSource.close();
  const applier = createClientApplier({ postgres: { url: appUrl.href, timeoutMs: 60_000, session } });
  const count = async (sql: typeof peer.sql) =>
    (await sql<{ n: number }[]>`select count(*)::int as n from patients`)[0]?.n ?? 0;
  // Rounds of one engine cycle and one drain, taking turns, so both meet the same machine load;
  // the medians are compared. Each round writes 5,000 new patients on the clinic server for the
  // engine to carry, and 5,000 on the PC for the drain; the drained ones reach the peer between
  // rounds, outside the timing.
  const rounds = longOrShort(5, 3, "outbox drain vs the engine: 3 rounds (5 with --long)");
  const syncTimes: number[] = [];
  const drainTimes: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const rows = Array.from({ length: DRAIN_WRITES }, (_, n) => patient(branchId, n));
    await clinic.sql.begin(async (tx) => {
      for (let i = 0; i < rows.length; i += 1_000)
        await tx`insert into patients ${tx(rows.slice(i, i + 1_000))}`;
    });
    const before = await count(peer.sql);
    const syncStarted = performance.now();
    await engine.syncNow();
    syncTimes.push(performance.now() - syncStarted);
    const synced = (await count(peer.sql)) - before;

    for (let n = 0; n < DRAIN_WRITES; n++) await pc.source.table("patients").insert(patient(branchId, n));
    const drainStarted = performance.now();
    const report = await pc.drain(applier);
    drainTimes.push(performance.now() - drainStarted);
    if (synced !== DRAIN_WRITES || report.applied !== DRAIN_WRITES) {
      throw new Error(`round ${round + 1}: synced ${synced}, drained ${report.applied} of ${DRAIN_WRITES}`);
    }
    await engine.syncNow();
  }
  await engine.stop();
  await applier.close();
  await pc.close();
  const rate = (msTaken: number) => Math.round(DRAIN_WRITES / (msTaken / 1000));
  const syncMs = percentile(syncTimes, 0.5);
  const drainMs = percentile(drainTimes, 0.5);
  log("");
  log(
    `${DRAIN_WRITES.toLocaleString("en")} new patients onto a PostgreSQL node on this machine, ${rounds} rounds`,
  );
  log(`  sync engine, one cycle (steady state)  ${syncTimes.map(ms).join(", ")}`);
  log(`  offline outbox drain (cv_client_apply) ${drainTimes.map(ms).join(", ")}`);
  log(
    `  medians: engine ${rate(syncMs).toLocaleString("en")} rows/s, drain ${rate(drainMs).toLocaleString("en")} rows/s`,
  );
  reportFigure({
    figure: `outbox drain, ${DRAIN_WRITES.toLocaleString("en")} rows → clinic server`,
    unit: "rows/s",
    measured: rate(drainMs),
    reference: { label: "sync engine steady state", value: rate(syncMs) },
    ratio: syncMs / drainMs,
    goal: { of: "ratio", atLeast: 0.8 },
  });
  await Promise.all([clinic.sql.end(), peer.sql.end()]);
} finally {
  await server.stop();
  await rm(dir, { recursive: true, force: true });
}
