/**
 * Sync engine benchmark: ratios and percentiles measured in one run on this machine.
 *
 * 1. Initial sync of CV_BENCH_ROWS (default 1,000,000) appointment-like rows cloud → clinic
 *    through the RPC/REST path (a child process, for its peak RSS), against PostgreSQL COPY of the
 *    same tables between the same two servers (`COPY … TO STDOUT` piped into `COPY … FROM STDIN`,
 *    triggers and foreign keys off on the target: the physical limit; the engine's first copy
 *    runs without triggers too here, where the clinic's functions are a superuser's, and checks
 *    the foreign keys once per page and key). COPY runs before and after the syncs, and the
 *    reference is the mean of the two.
 *    Goals: ≥ 0.5× COPY throughput, ≤ 150 MB peak RSS.
 * 2. The worst time of every RPC the product sends to the cloud, at its default page and batch
 *    size, on that cloud, against the hosted limit of the role that sends it (bench/rpc-times.ts).
 * 3. Steady state at a 1 s interval: 10,000 changes made on one side, time until all are on the
 *    other (target ≤ 1 s), both ways, against the time the target itself took to INSERT such a
 *    transaction (the other direction's, capture included); then replication lag p50/p95 under a
 *    steady write load.
 *    Also, the same transaction's pages pulled once and applied on the clinic server alone (the
 *    cloud, the gateway and the engine idle, as in production, where they do not share its cores):
 *    each sent while the one before it is written, as the engine sends them (the clinic server
 *    writes it early: PROTOCOL.md "Written early"), against one page after another. No goal.
 * On Linux, parts 1 and 3 also print the CPU time each server, the gateway and the engine used
 * (bench/cpu-time.ts), with two figures of no goal: the initial sync's CPU against COPY's, and the
 * CPU of each direction's slowest 10,000-change run spread over the machine's cores (the least
 * time that work could take here) against the time it took.
 *
 *   npm run bench                       (in packages/sync-engine: 100,000 appointments, 10 s of
 *                                        load; `npm run bench -- --long` at the root: 1,000,000, 20 s)
 *   CV_BENCH_ROWS=10000 npm run bench   (a quick run)
 *   CV_BENCH_ONLY=steady CV_BENCH_ROWS=1000 CV_BENCH_STEADY_RUNS=5 CV_BENCH_LOAD_SECONDS=0 \
 *     node --conditions=@centrovision/source --import tsx bench/sync.bench.ts
 *                                       (part 3 alone, five transactions each way; the engine's
 *                                        own initial sync fills the clinic)
 *   CV_BENCH_ONLY=initial CV_BENCH_ROWS=100000 node --conditions=@centrovision/source --import tsx \
 *     bench/sync.bench.ts               (part 1 alone)
 *   CV_BENCH_PAGE_SIZE=…                (part 3's log page size; default the engine's, 1,000)
 */
import { spawn } from "node:child_process";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { fileURLToPath } from "node:url";
import { SYNCED_TABLES } from "@centrovision/core";
import {
  applyMigrations,
  type LocalSupabase,
  longOrShort,
  reportFigure,
  SUPABASE_SUPERUSER,
  startLocalSupabase,
  startPostgres,
} from "@centrovision/testkit";
import { build } from "esbuild";
import postgres from "postgres";
import { filter, firstValueFrom } from "rxjs";
import {
  type ApplyRequest,
  createPostgresPeer,
  createSupabasePeer,
  createSyncEngine,
  syncEngineConfigSchema,
} from "../src/index.js";
import { type CpuUse, cpuMeter, describeCpu, postmasterPid } from "./cpu-time.js";
import { measureRpcTimes } from "./rpc-times.js";
import { countRows, newPatient, seedAppointments } from "./seed.js";

const ROWS = Number(
  process.env.CV_BENCH_ROWS ??
    longOrShort(
      1_000_000,
      100_000,
      "sync.bench.ts: initial sync of 100,000 appointments instead of 1,000,000",
    ),
);
const STEADY_CHANGES = 10_000;
const STEADY_RUNS = Number(process.env.CV_BENCH_STEADY_RUNS ?? 1);
/** `steady`: skip parts 1 and 2, whose seeding, COPY and RPC timings dwarf part 3. */
const STEADY_ONLY = process.env.CV_BENCH_ONLY === "steady";
/** `initial`: part 1 alone (the initial sync against COPY, and its peak RSS). */
const INITIAL_ONLY = process.env.CV_BENCH_ONLY === "initial";
const LOAD_SECONDS = Number(
  process.env.CV_BENCH_LOAD_SECONDS ?? longOrShort(20, 10, "sync.bench.ts: 10 s of lag load instead of 20"),
);
const LOAD_PER_SECOND = 50;
/** The engine's default `wakeGapMs`: at most one cycle a second started by a change. */
const WAKE_GAP_MS = syncEngineConfigSchema.parse({}).wakeGapMs;
/** The engine's default log page size: a page of a large transaction holds up to twice as many. */
const PAGE_SIZE = syncEngineConfigSchema.parse({}).pageSize;

const log = (line: string) => process.stdout.write(`${line}\n`);
const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0;

async function newClinic(server: Awaited<ReturnType<typeof startPostgres>>, name: string) {
  const url = await server.createDatabase(name);
  await applyMigrations(url);
  const sql = postgres(url, { max: 4, onnotice: () => {} });
  await sql`select cv_sync_init(${name})`;
  return { url, sql };
}

/**
 * Leaves a finished run's database quiet before the next run starts: the rows it inserted would
 * otherwise be vacuumed, analyzed and checkpointed by the server's background processes during
 * the next measurement, on the same two cores.
 */
async function settle(sql: postgres.Sql): Promise<void> {
  await sql`vacuum analyze`;
  await sql`checkpoint`;
}

/**
 * COPY of every synced table, parents first, from the cloud into `targetUrl`; returns ms. Each
 * table gets its own pair of connections: postgres.js (3.4.9) was seen to stall a `readable()`
 * issued on a connection that had already served a COPY stream.
 */
async function copyAll(cloudUrl: string, targetUrl: string): Promise<number> {
  const started = performance.now();
  for (const table of SYNCED_TABLES) {
    const source = postgres(cloudUrl, { max: 1, onnotice: () => {} });
    const target = postgres(targetUrl, {
      max: 1,
      onnotice: () => {},
      connection: { session_replication_role: "replica" },
    });
    const readable = await source.unsafe(`copy ${table} to stdout`).readable();
    const writable = await target.unsafe(`copy ${table} from stdin`).writable();
    await pipeline(readable, writable);
    await Promise.all([source.end(), target.end()]);
  }
  return performance.now() - started;
}

/**
 * Bundles the child into one JavaScript file, as the daemon ships, so the RSS measured is the
 * engine's and not a TypeScript loader's.
 */
async function bundleChild(): Promise<string> {
  const outfile = join(await mkdtemp(join(tmpdir(), "cv-sync-bench-")), "initial-sync-child.mjs");
  await build({
    entryPoints: [fileURLToPath(new URL("./initial-sync-child.ts", import.meta.url))],
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    outfile,
    conditions: ["@centrovision/source"],
    // ws's optional native speed-ups; it runs without them.
    external: ["bufferutil", "utf-8-validate"],
    banner: {
      js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
    },
    logLevel: "error",
  });
  return outfile;
}

/**
 * The V8 flags the daemon runs with: a young generation of 4 MB semi-spaces instead of 16 MB,
 * which V8 fills with each page's JSON before it collects (NODE_OPTIONS in
 * apps/sync-daemon/deploy/centrovision-sync.service), and an old generation grown by half its live
 * size between full collections instead of up to 4× (the daemon sets it at start-up:
 * apps/sync-daemon/src/heap.ts; given here on the command line, which V8 reads the same way).
 */
const DAEMON_NODE_FLAGS = ["--max-semi-space-size=4", "--heap-growing-percent=50"];

async function runInitialSync(
  env: Record<string, string>,
  nodeFlags: readonly string[],
): Promise<{ ms: number; maxRssMb: number; cpuSeconds: number; lastError: unknown }> {
  const child = spawn(process.execPath, [...nodeFlags, await bundleChild()], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  child.stdout.on("data", (chunk: Buffer) => {
    out += chunk.toString();
  });
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`child exited ${code}`)),
    );
  });
}

/**
 * Waits until every id is in `table` on `sql`; returns when. Polls every 20 ms for the last id
 * alone, then counts them all: the ids were written in one transaction, whose pages arrive in
 * the order they were written, and a poll sending all 10,000 ids each time took a core of the
 * two the measured servers share.
 */
async function waitForIds(
  sql: postgres.Sql,
  table: string,
  ids: readonly string[],
  timeoutMs = 60_000,
): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  const last = ids.at(-1) as string;
  while (performance.now() < deadline) {
    const [seen] = await sql<
      { n: number }[]
    >`select count(*)::int as n from ${sql(table)} where id = ${last}`;
    if (seen?.n === 1) {
      const at = performance.now();
      const [row] = await sql<
        { n: number }[]
      >`select count(*)::int as n from ${sql(table)} where id = any(${ids as string[]})`;
      if (row?.n === ids.length) return at;
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`${ids.length} rows did not arrive within ${timeoutMs} ms`);
}

/** Parts 1 and 2: the engine's initial sync against COPY, then every RPC's worst time; returns the synced clinic. */
async function compareInitialSync(
  supabase: LocalSupabase,
  cloud: postgres.Sql,
  clinicServer: Awaited<ReturnType<typeof startPostgres>>,
) {
  const copyCpu: CpuUse[] = [];
  const copyInto = async (name: string) => {
    const target = await newClinic(clinicServer, name);
    const meter = cpuMeter(serverPids, "this process (the pipe)");
    const ms = await copyAll(supabase.dbUrl, target.url);
    const cpu = meter.stop();
    if (cpu) copyCpu.push(cpu);
    const copied = await countRows(target.sql, "appointments");
    if (copied !== ROWS) throw new Error(`rows: copy ${copied} of ${ROWS}`);
    await settle(target.sql);
    await target.sql.end();
    return ms;
  };
  log("COPY of the same tables into a fresh clinic database…");
  const copyBeforeMs = await copyInto("copy_target");

  const syncInto = async (name: string, nodeFlags: readonly string[]) => {
    const target = await newClinic(clinicServer, name);
    const meter = cpuMeter(serverPids, "the gateway");
    const run = await runInitialSync(
      { CV_CLOUD_URL: supabase.url, CV_CLOUD_KEY: supabase.serviceRoleKey, CV_CLINIC_URL: target.url },
      nodeFlags,
    );
    // The child has exited: its own count, taken when the sync ended.
    const cpu = meter.stop({ "the engine": run.cpuSeconds });
    const synced = await countRows(target.sql, "appointments");
    if (synced !== ROWS || run.lastError)
      throw new Error(`rows: sync ${synced} of ${ROWS}; ${JSON.stringify(run.lastError)}`);
    return { target, run, cpu };
  };
  log("initial sync through the engine, node's default heap, into another fresh clinic database…");
  const plain = await syncInto("clinic_plain", []);
  await settle(plain.target.sql);
  await plain.target.sql.end();
  log(
    `initial sync through the engine, the daemon's node flags (${DAEMON_NODE_FLAGS.join(" ")}), into a third…`,
  );
  const { target: clinic, run: sync, cpu: syncCpu } = await syncInto("clinic", DAEMON_NODE_FLAGS);
  // The machine's speed drifts within a run (COPY alone measured 40,000–50,000 rows/s from one
  // run to the next, the same code): COPY again after the syncs, and their mean is the reference.
  log("COPY again, into a fourth, so that the reference brackets the syncs…");
  const copyAfterMs = await copyInto("copy_target_after");
  const copyMs = (copyBeforeMs + copyAfterMs) / 2;
  let total = 0;
  for (const table of SYNCED_TABLES) total += await countRows(cloud, table);
  const rate = (ms: number) => total / (ms / 1000);
  log("");
  log(
    `initial sync of ${ROWS.toLocaleString("en")} appointments (${total.toLocaleString("en")} rows in all), cloud → clinic`,
  );
  log(
    `  COPY before the syncs ${Math.round(rate(copyBeforeMs)).toLocaleString("en")} rows/s, after them ${Math.round(rate(copyAfterMs)).toLocaleString("en")}`,
  );
  const [copyCpuBefore, copyCpuAfter] = copyCpu;
  for (const [what, cpu] of [
    ["COPY before", copyCpuBefore],
    ["the sync (the daemon's flags)", syncCpu],
    ["COPY after", copyCpuAfter],
  ] as const) {
    if (cpu) log(`  ${what}: ${describeCpu(cpu)}`);
  }
  reportFigure({
    figure: `initial sync, ${total.toLocaleString("en")} rows, cloud → clinic`,
    unit: "rows/s",
    measured: rate(sync.ms),
    reference: { label: "COPY TO STDOUT | COPY FROM STDIN, before and after", value: rate(copyMs) },
    ratio: copyMs / sync.ms,
    goal: { of: "ratio", atLeast: 0.5 },
  });
  if (syncCpu && copyCpuBefore && copyCpuAfter) {
    const copyCpuSeconds = (copyCpuBefore.totalSeconds + copyCpuAfter.totalSeconds) / 2;
    // No goal: the machine's speed moves both alike, so their ratio shows the copy's own cost.
    reportFigure({
      figure: "CPU of the initial sync, servers, gateway and engine",
      unit: "s",
      measured: syncCpu.totalSeconds,
      reference: { label: "COPY's, before and after", value: copyCpuSeconds },
      ratio: syncCpu.totalSeconds / copyCpuSeconds,
    });
  }
  reportFigure({
    figure: "peak RSS of the initial sync process (the daemon's node flags)",
    unit: "MB",
    measured: sync.maxRssMb,
    reference: { label: "node's default heap", value: plain.run.maxRssMb },
    ratio: sync.maxRssMb / plain.run.maxRssMb,
    goal: { of: "measured", atMost: 150 },
  });
  reportFigure({
    figure: "initial sync with the daemon's node flags, against node's default heap",
    unit: "rows/s",
    measured: rate(sync.ms),
    reference: { label: "node's default heap", value: rate(plain.run.ms) },
    ratio: plain.run.ms / sync.ms,
    goal: { of: "ratio", atLeast: 0.95 },
  });
  if (INITIAL_ONLY) return clinic;

  log("");
  log(
    `worst time per RPC at its default page/batch size, ${total.toLocaleString("en")}-row cloud, hosted statement timeouts`,
  );
  for (const t of await measureRpcTimes(supabase, cloud, clinic)) {
    reportFigure({
      figure: `${t.fn}: ${t.what}, worst`,
      unit: "ms",
      measured: t.worstMs,
      reference: { label: "hosted statement timeout", value: t.limitMs },
      ratio: t.worstMs / t.limitMs,
      goal: { of: "ratio", atMost: 0.5 },
    });
  }
  return clinic;
}

const APPLY_ALONE_ROUNDS = 4;
/** The median of `values`, as `percentile` reads it. */
const median = (values: number[]) =>
  percentile(
    [...values].sort((a, b) => a - b),
    0.5,
  );

/** Writes `rows` in one transaction, in statements of 1,000, as an application's import would. */
async function insertPatients(
  sql: postgres.Sql,
  rows: readonly ReturnType<typeof newPatient>[],
): Promise<void> {
  await sql.begin(async (tx) => {
    for (let i = 0; i < rows.length; i += 1_000)
      await tx`insert into patients ${tx(rows.slice(i, i + 1_000))}`;
  });
}

/**
 * Part 3, first: a 10,000-change transaction's pages, pulled once from the cloud, applied on
 * copies of a synced clinic database with nothing else running: each sent while the one before it
 * is written (the engine's way), against one page after another, rounds alternating.
 */
async function applyOnClinicAlone() {
  const template = "apply_template";
  const synced = await newClinic(clinicServer, template);
  await synced.sql.end();
  const local = createPostgresPeer({ url: synced.url, timeoutMs: 60_000 });
  const remote = createSupabasePeer({ url: supabase.url, key: supabase.serviceRoleKey, timeoutMs: 60_000 });
  const admin = postgres(clinicServer.url, { max: 1, onnotice: () => {} });
  try {
    const engine = createSyncEngine({ local, remote, intervalMs: 3_600_000 });
    await engine.syncNow();
    await engine.stop();
    const [branch] = await cloud<{ id: string }[]>`select id from branches limit 1`;
    await insertPatients(
      cloud,
      Array.from({ length: STEADY_CHANGES }, (_, n) => newPatient(branch?.id as string, `Sola ${n}`)),
    );
    const [clinicInfo, cloudInfo] = await Promise.all([local.node(), remote.node()]);
    let after = (await local.cursor(cloudInfo.nodeId)).cursor;
    const requests: ApplyRequest[] = [];
    for (let more = true; more; ) {
      const page = await remote.pull({ consumer: clinicInfo.nodeId, after, limit: PAGE_SIZE });
      requests.push({
        source: { ...page.source, nodeName: cloudInfo.nodeName },
        expected: after,
        cursor: page.cursor,
        changes: page.changes,
      });
      after = page.cursor;
      more = page.hasMore;
    }
    await local.close();
    await admin`select pg_terminate_backend(pid) from pg_stat_activity where datname = ${template}`;
    const times: Record<"pipelined" | "sequential", number[]> = { pipelined: [], sequential: [] };
    for (let round = 0; round < APPLY_ALONE_ROUNDS; round++) {
      for (const way of round % 2 === 0
        ? (["pipelined", "sequential"] as const)
        : (["sequential", "pipelined"] as const)) {
        const copy = `apply_${way}_${round}`;
        await admin.unsafe(`create database ${copy} template ${template}`);
        const target = createPostgresPeer({ url: clinicServer.urlFor(copy), timeoutMs: 60_000 });
        await target.node();
        const started = performance.now();
        let inFlight: Promise<unknown> | undefined;
        for (const request of requests) {
          const sent = target.apply(request);
          if (way === "sequential") await sent;
          else await inFlight;
          inFlight = sent;
        }
        await inFlight;
        times[way].push(performance.now() - started);
        await target.close();
        await admin.unsafe(`drop database ${copy} with (force)`);
      }
    }
    log("");
    log(
      `${STEADY_CHANGES.toLocaleString("en")} changes in ${requests.length} pages applied on the clinic server alone: ` +
        `each sent while the one before it is written ${times.pipelined.map(seconds).join(", ")}; ` +
        `one after another ${times.sequential.map(seconds).join(", ")}`,
    );
    reportFigure({
      figure: `${STEADY_CHANGES.toLocaleString("en")} changes applied on the clinic server alone, each page sent while the one before it is written, median of ${APPLY_ALONE_ROUNDS}`,
      unit: "s",
      measured: median(times.pipelined) / 1000,
      reference: { label: "one page after another, median", value: median(times.sequential) / 1000 },
      ratio: median(times.pipelined) / median(times.sequential),
    });
  } finally {
    await local.close();
    await remote.close();
    await admin.end();
  }
}

/** Part 3: steady state at a 1 s interval, then replication lag under load, against the synced clinic. */
async function steadyState(clinicUrl: string, clinicSql: postgres.Sql) {
  const engine = createSyncEngine({
    local: createPostgresPeer({ url: clinicUrl, timeoutMs: 60_000 }),
    remote: createSupabasePeer({ url: supabase.url, key: supabase.serviceRoleKey, timeoutMs: 60_000 }),
    intervalMs: 1_000,
    ...(process.env.CV_BENCH_PAGE_SIZE !== undefined && { pageSize: Number(process.env.CV_BENCH_PAGE_SIZE) }),
    idleCursorSaveMs: 1_000,
  });
  await engine.syncNow();
  const [branch] = await cloud<{ id: string }[]>`select id from branches limit 1`;
  const patient = (label: string) => newPatient(branch?.id as string, label);
  log("");
  log(
    `steady state, 1 s interval: ${STEADY_CHANGES.toLocaleString("en")} changes in one transaction, until all arrived`,
  );
  // Where the time goes: each page's events, in ms after the commit.
  let committed = 0;
  let trace: string[] = [];
  const at = () => Math.round(performance.now() - committed);
  const tracing = engine.progress$.subscribe((p) => {
    if (committed > 0 && p.stage === "log" && p.pageRows > 0) trace.push(`${p.event} ${p.pageRows} @${at()}`);
  });
  // When each direction of a cycle starts: the wait for the tick, then the other direction's pass.
  let phase = engine.getStatus().phase;
  tracing.add(
    engine.status$.subscribe((status) => {
      if (
        committed > 0 &&
        status.phase !== phase &&
        (status.phase === "pulling" || status.phase === "pushing")
      )
        trace.push(`${status.phase} @${at()}`);
      phase = status.phase;
    }),
  );
  /**
   * Per node, the slowest of its own INSERTs of such a transaction (capture included): what
   * writing those rows there costs, the reference for applying them there.
   */
  const inserted: Record<string, number> = {};
  const slowestSyncs: { fromName: string; toName: string; ms: number; cpu: CpuUse | undefined }[] = [];
  for (const [from, to, fromName, toName] of [
    [cloud, clinicSql, "cloud", "clinic"],
    [clinicSql, cloud, "clinic", "cloud"],
  ] as const) {
    let slowest = 0;
    let slowestCpu: CpuUse | undefined;
    for (let run = 0; run < STEADY_RUNS; run++) {
      const rows = Array.from({ length: STEADY_CHANGES }, (_, n) => patient(`Estable ${n}`));
      // Each transaction finds the engine as a lone one does: idle, not still in the cycle that
      // carried the previous one (its other direction, its acknowledgement), and a wake gap past
      // that cycle's wake-up (at most one woken cycle a second), which held the first
      // transaction of each direction 300–360 ms in earlier runs.
      await firstValueFrom(engine.status$.pipe(filter((status) => status.phase === "idle")));
      await new Promise((resolve) => setTimeout(resolve, WAKE_GAP_MS));
      const began = performance.now();
      await insertPatients(from, rows);
      committed = performance.now();
      const meter = cpuMeter(
        { [toName]: serverPids[toName], [fromName]: serverPids[fromName] },
        "engine and gateway",
      );
      const insertMs = committed - began;
      inserted[fromName] = Math.max(inserted[fromName] ?? 0, insertMs);
      trace = [];
      const arrived = await waitForIds(
        to,
        "patients",
        rows.map((r) => r.id),
      );
      const cpu = meter.stop();
      const ms = arrived - committed;
      committed = 0;
      if (ms > slowest) {
        slowest = ms;
        slowestCpu = cpu;
      }
      log(
        `  ${fromName} → ${toName}   ${seconds(ms)}   (its INSERT on the ${fromName}: ${seconds(insertMs)})`,
      );
      log(`    pages (ms after the commit): ${trace.join(", ")}`);
      if (cpu) log(`    ${describeCpu(cpu)}`);
    }
    slowestSyncs.push({ fromName, toName, ms: slowest, cpu: slowestCpu });
  }
  tracing.unsubscribe();
  for (const { fromName, toName, ms, cpu } of slowestSyncs) {
    const reference = inserted[toName] as number;
    reportFigure({
      figure: `${STEADY_CHANGES.toLocaleString("en")} changes in one transaction, ${fromName} → ${toName}, slowest of ${STEADY_RUNS}`,
      unit: "s",
      measured: ms / 1000,
      reference: { label: `its INSERT on the ${toName}, slowest`, value: reference / 1000 },
      ratio: ms / reference,
      goal: { of: "measured", atMost: 1 },
    });
    // No goal: the least time that run's CPU allows on this machine's cores (no schedule of that
    // work finishes sooner here), and how near the run came to it.
    if (cpu)
      reportFigure({
        figure: `${STEADY_CHANGES.toLocaleString("en")} changes, ${fromName} → ${toName}, that run's CPU over ${cpu.cores} cores`,
        unit: "s",
        measured: cpu.floorSeconds,
        reference: { label: "the time it took", value: ms / 1000 },
        ratio: cpu.floorSeconds / (ms / 1000),
      });
  }

  log("");
  log(
    `replication lag under a steady load of ${LOAD_PER_SECOND} writes/s on each side for ${LOAD_SECONDS} s`,
  );
  const lags: Record<string, number[]> = { "cloud → clinic": [], "clinic → cloud": [] };
  const pending: { id: string; at: number; to: postgres.Sql; key: string }[] = [];
  const writing = (async () => {
    const end = performance.now() + LOAD_SECONDS * 1000;
    for (let tick = 0; performance.now() < end; tick++) {
      const [from, to, key] =
        tick % 2 === 0 ? [cloud, clinicSql, "cloud → clinic"] : [clinicSql, cloud, "clinic → cloud"];
      const row = patient(`Carga ${tick}`);
      await from`insert into patients ${from(row)}`;
      pending.push({ id: row.id, at: performance.now(), to, key });
      await new Promise((resolve) => setTimeout(resolve, 1000 / (2 * LOAD_PER_SECOND)));
    }
  })();
  let done = false;
  void writing.then(() => (done = true));
  while (!done || pending.length > 0) {
    for (const to of [cloud, clinicSql]) {
      const mine = pending.filter((p) => p.to === to);
      if (mine.length === 0) continue;
      const found = await to<
        { id: string }[]
      >`select id from patients where id = any(${mine.map((p) => p.id)})`;
      const now = performance.now();
      const arrived = new Set(found.map((f) => f.id));
      for (const p of mine.filter((m) => arrived.has(m.id))) {
        lags[p.key]?.push(now - p.at);
        pending.splice(pending.indexOf(p), 1);
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  for (const [key, values] of Object.entries(lags)) {
    const sorted = values.sort((a, b) => a - b);
    log(
      `  ${key}   p50 ${seconds(percentile(sorted, 0.5))}   max ${seconds(sorted.at(-1) ?? 0)}   (${sorted.length} rows)`,
    );
    reportFigure({
      figure: `replication lag at ${LOAD_PER_SECOND} writes/s each way, ${key}, p95`,
      unit: "s",
      measured: percentile(sorted, 0.95) / 1000,
    });
  }
  const status = engine.getStatus();
  log(
    `  engine status: lagMs ${status.lagMs}, clockSkewMs ${status.clockSkewMs}, pendingUp ${status.pendingUp}, pendingDown ${status.pendingDown}`,
  );
  await engine.stop();
}

const cloudServer = await startPostgres({ superuser: SUPABASE_SUPERUSER });
const clinicServer = await startPostgres();
/** The two servers' postmasters by the names the figures give them, for the CPU each uses. */
const serverPids = {
  clinic: postmasterPid(clinicServer.dataDir),
  cloud: postmasterPid(cloudServer.dataDir),
};
const supabase = await startLocalSupabase({ postgres: cloudServer, log: () => {} });
const cloud = postgres(supabase.dbUrl, { max: 4, onnotice: () => {} });
try {
  await cloud`select cv_sync_init('cloud')`;
  log(`seeding ${ROWS.toLocaleString("en")} appointments (+ parents) in the cloud…`);
  await seedAppointments(cloud, ROWS);
  await settle(cloud);

  const clinic = STEADY_ONLY
    ? await newClinic(clinicServer, "clinic")
    : await compareInitialSync(supabase, cloud, clinicServer);
  if (!INITIAL_ONLY) {
    await applyOnClinicAlone();
    await steadyState(clinic.url, clinic.sql);
  }
  await clinic.sql.end();
} finally {
  await cloud.end();
  await supabase.stop();
  await Promise.all([cloudServer.stop(), clinicServer.stop()]);
}
