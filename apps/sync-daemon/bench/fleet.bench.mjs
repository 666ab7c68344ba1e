// The fleet: N clinics against ONE cloud, each clinic with its own database and its own
// `centrovision-sync run` process, for N = 1, 2, 4 (and 8 with --long). Clinics join one step at a
// time and stay: each step adds clinics until there are N, waits until every daemon is in sync,
// then measures, per clinic and in total:
//   - the first minute after that (WARMUP_S, nothing changes): the daemon's CPU alone, reported
//     apart. A daemon spends up to about 0.15 CPU-s more in it than in the minutes after (0.09–0.24
//     CPU-s in it); that is the tail of the work just done (the initial sync, the last load), not
//     what idling costs, so the idle window starts after it;
//   - idle (nothing changes, IDLE_S, 180 s by default): the cloud requests each clinic's daemon
//     makes (goal ≤ 30/min), the cloud's CPU (its PostgreSQL, and its gateway: the local Supabase
//     runs in a process of its own, bench/fleet-cloud.mjs), and the daemon's own CPU (goal ≤ 0.2
//     CPU-s/min). Linux counts CPU in 10 ms ticks: over 60 s the goal is 20 ticks, and one 100 ms
//     garbage collection moves a reading by 0.1, so the window is three minutes;
//   - load (10 new patients a second per clinic, first cloud → clinic, then clinic → cloud): the
//     lag from a row's commit on one side to its commit on the other (both servers keep commit
//     timestamps; goal p95 ≤ 1.5 s), and the sync RPCs' bytes on the wire per row against the row's
//     own size, pg_column_size (goal ≤ 2×);
//   - the initial sync of each new clinic, whose branch already holds K patients in the cloud.
// Then the growth with N, and a linear extrapolation of the cloud's idle totals to 50 clinics.
// Requests are counted at the gateway, attributed by the caller's token (each clinic's node
// credential is its own Auth user); CPU from /proc. The daemons run as the service runs them (the
// CLI built at the start, the systemd unit's environment), with the config's defaults except the
// HTTP port (printed at the start). A missed goal is a finding, not a failure.
//
//   npm run bench -- --filter=centrovision-sync [--long]    (the package's benches, this one last)
//   node --conditions=@centrovision/source --import tsx bench/fleet.bench.mjs    (this one alone,
//   from apps/sync-daemon; CV_BENCH_LONG=1 for the long form, CV_FLEET_IDLE_S=60 for a shorter idle window,
//   CV_FLEET_WARMUP_S for another first minute, CV_FLEET_STEPS=1 for other clinic counts)
import { spawn } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import { longOrShort, startPostgres } from "@centrovision/testkit";
import postgres from "postgres";
import {
  buildDaemon,
  createClinic,
  insertPatient,
  modeOf,
  patientsOf,
  startDaemon,
  stopDaemon,
} from "./fleet-clinic.mjs";
import { callerDelta, requestsOfOthers } from "./fleet-figures.mjs";
import { alive, ownCpuSeconds, postmasterOf, treeCpuSeconds, treePids } from "./fleet-proc.mjs";
import { extrapolate, printConfig, printGrowth, printStep, reportStep } from "./fleet-report.mjs";

const form = longOrShort(
  { steps: [1, 2, 4, 8], seedRows: 20_000, loadS: 30 },
  { steps: [1, 2, 4], seedRows: 2_000, loadS: 10 },
  "N = 1, 2, 4 clinics (--long: 1, 2, 4, 8), a new clinic's scope 2,000 rows (20,000), 10 s of load each way (30 s)",
);
const { seedRows, loadS } = form;
const steps = process.env.CV_FLEET_STEPS ? fleetSteps(process.env.CV_FLEET_STEPS) : form.steps;
/** `CV_FLEET_STEPS=1` or `1,2`: the clinic counts to measure, rising. */
function fleetSteps(text) {
  const list = text.split(",").map(Number);
  if (list.some((n, i) => !Number.isInteger(n) || n < 1 || n <= (list[i - 1] ?? 0))) {
    throw new Error(`CV_FLEET_STEPS=${text}: give rising clinic counts separated by commas, e.g. 1,2,4`);
  }
  return list;
}
const IDLE_S = Number(process.env.CV_FLEET_IDLE_S ?? 180);
const WARMUP_S = Number(process.env.CV_FLEET_WARMUP_S ?? 60);
const RATE = 10;
const SETTLE_MS = 5_000;
const SYNC_PATHS = "/rest/v1/rpc/cv_sync_";
const plan = { rate: RATE, loadS, seedRows, idleS: IDLE_S, warmupS: WARMUP_S };
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
const perMinute = (value, ms) => (value * 60_000) / ms;

/** Undone in reverse order by cleanUp(), whatever happened. */
const cleanups = [];
/** Every process the bench started, checked after cleanUp(). */
const started = [];
let cleaning;
function cleanUp() {
  cleaning ??= (async () => {
    for (let undo = cleanups.pop(); undo !== undefined; undo = cleanups.pop()) {
      await undo().catch((error) => console.error(`[fleet] clean-up step failed: ${error.message}`));
    }
    const left = alive(started);
    if (left.length > 0) {
      console.error(
        `[fleet] still running after clean-up, killed: ${left.map(({ pid, comm }) => `${pid} (${comm})`).join(", ")}`,
      );
      for (const { pid } of left) process.kill(pid, "SIGKILL");
      process.exitCode = 1;
    }
  })();
  return cleaning;
}
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.once(signal, () => cleanUp().then(() => process.exit(130)));
}

/** The local Supabase in a process of its own (fleet-cloud.mjs), talked to over IPC. */
async function startCloud() {
  const child = spawn(
    process.execPath,
    [
      "--conditions=@centrovision/source",
      "--import",
      import.meta.resolve("tsx"),
      fileURLToPath(new URL("fleet-cloud.mjs", import.meta.url)),
    ],
    { stdio: ["ignore", "ignore", "pipe", "ipc"] },
  );
  started.push(child.pid);
  let stderr = "";
  child.stderr.on("data", (chunk) => {
    stderr += chunk;
  });
  const waiting = { ready: [], counts: [] };
  child.on("message", (message) => waiting[message.type]?.shift()?.(message));
  const exited = new Promise((resolve) => child.once("exit", resolve));
  const next = (type) => new Promise((resolve) => waiting[type].push(resolve));
  let postmaster;
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.send({ type: "stop" });
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        if (postmaster !== undefined) process.kill(postmaster, "SIGQUIT");
      }, 30_000);
      await exited;
      clearTimeout(timer);
    }
  });
  const ready = await Promise.race([
    next("ready"),
    exited.then((code) => {
      throw new Error(`the cloud exited ${code} while starting:\n${stderr}`);
    }),
  ]);
  postmaster = postmasterOf(child.pid);
  started.push(postmaster);
  return {
    ...ready,
    pid: child.pid,
    postmaster,
    counts() {
      child.send({ type: "counts" });
      return Promise.race([
        next("counts"),
        exited.then((code) => {
          throw new Error(`the cloud exited ${code}:\n${stderr}`);
        }),
      ]);
    },
  };
}

/** CPU seconds so far: each daemon, the cloud's database and gateway, the clinics' server. */
function cpuNow(world) {
  return {
    daemons: world.clinics.map((clinic) => treeCpuSeconds(clinic.daemon.child.pid)),
    cloudDb: treeCpuSeconds(world.cloud.postmaster),
    gateway: ownCpuSeconds(world.cloud.pid),
    clinicDb: treeCpuSeconds(world.clinicPostmaster),
  };
}

/**
 * The cloud's database statistics so far: sequential scans of pg_enum and of every catalog table,
 * and autovacuum and autoanalyze runs per table (work counted in the idle window that idling did
 * not cause, or did: the daemons purge the change logs).
 */
async function cloudStats(cloudSql) {
  const rows = await cloudSql`
    select schemaname || '.' || relname as name, seq_scan::float8 as scans,
      (autovacuum_count + autoanalyze_count)::float8 as autovacuum,
      schemaname = 'pg_catalog' as catalog
    from pg_stat_all_tables`;
  return {
    scans: rows.reduce((sum, row) => sum + (row.catalog ? row.scans : 0), 0),
    enum: rows.find((row) => row.name === "pg_catalog.pg_enum")?.scans ?? 0,
    autovacuum: new Map(rows.map((row) => [row.name, row.autovacuum])),
  };
}

/**
 * Vacuums and analyzes the cloud and the clinics that joined (so that autovacuum, after their
 * rows were loaded, does not run in the idle window), then waits until every daemon says
 * in-sync, and SETTLE_MS more.
 */
async function settle(cloudSql, clinics, joined) {
  for (const sql of [cloudSql, ...joined.map(({ clinic }) => clinic.sql)]) await sql.unsafe("vacuum analyze");
  const deadline = Date.now() + 120_000;
  for (;;) {
    const modes = await Promise.all(clinics.map(modeOf));
    if (modes.every((mode) => mode === "in-sync")) break;
    if (Date.now() > deadline) throw new Error(`the daemons did not settle: ${modes.join(", ")}`);
    await sleep(500);
  }
  await sleep(SETTLE_MS);
}

/** The minute before the idle window (WARMUP_S, nothing written): each daemon's CPU in it. */
async function warmUp(world) {
  const before = cpuNow(world);
  const from = performance.now();
  await sleep(WARMUP_S * 1000);
  const after = cpuNow(world);
  const ms = performance.now() - from;
  return {
    seconds: ms / 1000,
    daemonCpu: world.clinics.map((_, i) => perMinute(after.daemons[i] - before.daemons[i], ms)),
  };
}

/** The idle window: nothing is written anywhere for IDLE_S. */
async function idleWindow(world) {
  const { cloud, cloudSql, clinics } = world;
  const before = { counts: await cloud.counts(), cpu: cpuNow(world), stats: await cloudStats(cloudSql) };
  const from = performance.now();
  await sleep(IDLE_S * 1000);
  const after = { counts: await cloud.counts(), cpu: cpuNow(world), stats: await cloudStats(cloudSql) };
  const ms = performance.now() - from;
  const minute = (value) => perMinute(value, ms);
  const perClinic = clinics.map((clinic, i) => {
    const all = callerDelta(before.counts, after.counts, clinic.userId);
    const sync = callerDelta(before.counts, after.counts, clinic.userId, SYNC_PATHS);
    return {
      requests: minute(all.requests),
      paths: Object.entries(all.paths).map(([path, { requests }]) => [path, minute(requests)]),
      bytes: minute(all.bytesIn + all.bytesOut),
      syncBytesPerMs: (sync.bytesIn + sync.bytesOut) / ms,
      emptySyncRequest: (sync.bytesIn + sync.bytesOut) / sync.requests,
      daemonCpu: minute(after.cpu.daemons[i] - before.cpu.daemons[i]),
    };
  });
  const clinicRequests = perClinic.reduce((sum, clinic) => sum + clinic.requests, 0);
  const others = minute(
    requestsOfOthers(before.counts, after.counts, new Set(clinics.map((clinic) => clinic.userId))),
  );
  const realtime = after.counts.realtime;
  return {
    seconds: ms / 1000,
    perClinic,
    cloud: {
      clinicRequests,
      otherRequests: others,
      dbCpu: minute(after.cpu.cloudDb - before.cpu.cloudDb),
      gatewayCpu: minute(after.cpu.gateway - before.cpu.gateway),
      realtimeOpen: realtime.open,
      realtimeBytes: minute(
        realtime.bytesIn +
          realtime.bytesOut -
          before.counts.realtime.bytesIn -
          before.counts.realtime.bytesOut,
      ),
      enumScans: minute(after.stats.enum - before.stats.enum),
      catalogScans: minute(after.stats.scans - before.stats.scans),
      autovacuumed: [...after.stats.autovacuum]
        .filter(([name, runs]) => runs > (before.stats.autovacuum.get(name) ?? 0))
        .map(([name]) => name),
    },
    clinicDbCpu: minute(after.cpu.clinicDb - before.cpu.clinicDb),
  };
}

/** When each of `ids` committed on the server `sql` reaches (ms since the epoch). */
async function commitTimes(sql, ids) {
  const rows = await sql`
    select id::text as id, extract(epoch from pg_xact_commit_timestamp(xmin))::float8 * 1000 as at
    from patients where id = any(${ids}::uuid[])`;
  return new Map(rows.map((row) => [row.id, row.at]));
}

/**
 * RATE new patients a second per clinic for loadS, written on one side (`down`: the cloud, `up`:
 * each clinic), until all are on the other; the lags and the sync RPCs' bytes per row.
 */
async function loadPhase(world, direction, idle) {
  const { cloud, cloudSql, clinics } = world;
  const source = (clinic) => (direction === "down" ? cloudSql : clinic.sql);
  const target = (clinic) => (direction === "down" ? clinic.sql : cloudSql);
  const before = await cloud.counts();
  const ids = clinics.map(() => []);
  const writes = [];
  const from = performance.now();
  for (let tick = 0; tick < RATE * loadS; tick++) {
    await sleep(from + (tick * 1000) / RATE - performance.now());
    for (const [i, clinic] of clinics.entries()) {
      const id = randomUUID();
      ids[i].push(id);
      // Settled at once: a write failing while the next ones are timed must not go unhandled.
      writes.push(
        insertPatient(source(clinic), clinic.branchId, id, tick).then(
          () => null,
          (error) => error,
        ),
      );
    }
  }
  const failed = (await Promise.all(writes)).find((error) => error !== null);
  if (failed) throw failed;
  const deadline = Date.now() + 60_000;
  const arrived = clinics.map(() => 0);
  while (Date.now() < deadline) {
    await Promise.all(
      clinics.map(async (clinic, i) => {
        const [row] = await target(
          clinic,
        )`select count(*)::int as n from patients where id = any(${ids[i]}::uuid[])`;
        arrived[i] = row.n;
      }),
    );
    if (arrived.every((n, i) => n === ids[i].length)) break;
    await sleep(100);
  }
  const ms = performance.now() - from;
  const after = await cloud.counts();
  return Promise.all(
    clinics.map(async (clinic, i) => {
      const [written, seen] = await Promise.all([
        commitTimes(source(clinic), ids[i]),
        commitTimes(target(clinic), ids[i]),
      ]);
      const lags = [...seen].map(([id, at]) => (at - (written.get(id) ?? Number.NaN)) / 1000);
      const sync = callerDelta(before, after, clinic.userId, SYNC_PATHS);
      const bytes = sync.bytesIn + sync.bytesOut;
      const [size] = await cloudSql`
        select avg(pg_column_size(p.*))::float8 as row, avg(octet_length(to_jsonb(p)::text))::float8 as json
        from patients p where id = any(${ids[i]}::uuid[])`;
      return {
        rows: ids[i].length,
        arrived: arrived[i],
        lags,
        requests: sync.requests,
        bytes,
        idleBytes: idle.perClinic[i].syncBytesPerMs * ms,
        rowSize: size.row,
        jsonSize: size.json,
      };
    }),
  );
}

try {
  console.log(
    `fleet: N = ${steps.join(", ")} clinics against one local cloud, each with its own database and daemon`,
  );
  buildDaemon();
  const cloud = await startCloud();
  const clinicServer = await startPostgres({ settings: { track_commit_timestamp: "on" } });
  cleanups.push(() => clinicServer.stop());
  const clinicPostmaster = postmasterOf(process.pid);
  started.push(clinicPostmaster);
  const cloudSql = postgres(cloud.dbUrl, { max: 4, onnotice: () => {} });
  cleanups.push(() => cloudSql.end());
  const world = { cloud, cloudSql, clinicPostmaster, clinics: [] };
  const tag = randomBytes(3).toString("hex");
  const results = [];
  for (const n of steps) {
    const indexes = Array.from({ length: n - world.clinics.length }, (_, i) => world.clinics.length + i + 1);
    const made = await Promise.all(
      indexes.map((index) =>
        createClinic({ index, tag, cloud, cloudSql, clinicServer, seedRows }).then((clinic) => {
          cleanups.push(() => stopDaemon(clinic).then(() => clinic.close()));
          return clinic;
        }),
      ),
    );
    if (world.clinics.length === 0) printConfig(made[0], plan);
    const joined = await Promise.all(
      made.map(async (clinic) => {
        const sync = await startDaemon(clinic, seedRows, 600_000);
        started.push(...treePids(clinic.daemon.child.pid));
        return { clinic, sync };
      }),
    );
    world.clinics.push(...made);
    for (const clinic of made) {
      const held = await patientsOf(clinic.sql, clinic.branchId);
      if (held !== seedRows) throw new Error(`clinic ${clinic.index} holds ${held} rows, not ${seedRows}`);
    }
    await settle(cloudSql, world.clinics, joined);
    const warmup = await warmUp(world);
    const idle = await idleWindow(world);
    const loads = { down: await loadPhase(world, "down", idle), up: await loadPhase(world, "up", idle) };
    const step = { n, joined, warmup, idle, loads };
    results.push(step);
    printStep(step, plan);
    reportStep(step, plan);
  }
  // A growth needs two steps.
  if (results.length > 1) {
    printGrowth(results);
    extrapolate(results);
  }
} finally {
  await cleanUp();
}
