/**
 * Per-clinic scope benchmark (PROTOCOL.md "Scope"), measured in one run on this machine:
 *
 * 1. What a clinic server pulls. A network of CV_BENCH_BRANCHES branches (default 10) in one
 *    cloud, each with its staff, patients, a year of appointments and consultations, some patients
 *    seen at two branches. An initial sync and then a day of edits everywhere, pulled by a clinic
 *    holding one branch, one holding two, and (the reference) the whole database with the service
 *    key: rows and bytes on the wire of each, and their share of the whole.
 * 2. What keeping scopes costs the cloud: one appointment written per transaction with scope
 *    tracking on and off (the trigger disabled), interleaved on one database; the ratio of the
 *    median latencies.
 * 3. Push throughput: 10,000 changes by a branch's staff member from a clinic into the cloud
 *    through its node credential (scopes kept, every change checked against its clinic's scope
 *    and its author's rights) against the same through the service key with tracking off (no
 *    scope, no author check: what the sync did before), alternated, best of three each; goal ≥ 0.8×.
 *
 *   npm run bench                                  (in packages/sync-engine: every bench)
 *   node --conditions=@centrovision/source --import tsx bench/scope.bench.ts
 */
import { randomUUID } from "node:crypto";
import { SYNCED_TABLES } from "@centrovision/core";
import {
  applyMigrations,
  type LocalSupabase,
  reportFigure,
  SUPABASE_SUPERUSER,
  startLocalSupabase,
  startPostgres,
} from "@centrovision/testkit";
import { createClient } from "@supabase/supabase-js";
import postgres from "postgres";
import WebSocket from "ws";
import { createPostgresPeer, createSupabasePeer, createSyncEngine, type SyncPeer } from "../src/index.js";

const BRANCHES = Number(process.env.CV_BENCH_BRANCHES ?? 10);
const PATIENTS_PER_BRANCH = 1_000;
const APPOINTMENTS_PER_BRANCH = 5_000;
const PUSH_CHANGES = 10_000;
const WRITE_SAMPLES = 1_500;

const log = (line: string) => process.stdout.write(`${line}\n`);
const pct = (part: number, whole: number) => `${((100 * part) / whole).toFixed(1)} %`;
const mb = (bytes: number) => `${(bytes / 1_048_576).toFixed(1)} MB`;
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;

/** Bytes each way of every request a client makes, for one peer. */
interface Wire {
  sent: number;
  received: number;
}

function countingFetch(wire: Wire): typeof fetch {
  return async (input, init) => {
    const body = init?.body;
    if (typeof body === "string") wire.sent += Buffer.byteLength(body);
    const response = await fetch(input, init);
    const bytes = Buffer.from(await response.arrayBuffer());
    wire.received += bytes.byteLength;
    const empty = [101, 204, 205, 304].includes(response.status);
    return new Response(empty ? null : bytes, {
      status: response.status,
      statusText: response.statusText,
      headers: response.headers,
    });
  };
}

/** The cloud as a clinic server's node credential holding `branches` (null: every branch) sees it. */
async function nodePeer(supabase: LocalSupabase, branches: string[] | null, wire: Wire): Promise<SyncPeer> {
  const { id } = await supabase.createUser({
    email: `node-${randomUUID().slice(0, 8)}@nodes.centrovision.invalid`,
    password: randomUUID(),
  });
  const cloud = postgres(supabase.dbUrl, { max: 1, onnotice: () => {} });
  await cloud`select cv_sync_register_node(${id}, ${`Clínica ${id.slice(0, 8)}`}, ${branches}::uuid[])`;
  await cloud.end();
  const token = await supabase.mintUserToken(id, {}, { expiresIn: 7_200 });
  const client = createClient(supabase.url, supabase.anonKey, {
    accessToken: async () => token,
    realtime: { transport: WebSocket as never },
    global: { fetch: countingFetch(wire) },
  });
  return createSupabasePeer({ url: supabase.url, client, timeoutMs: 120_000 });
}

function servicePeer(supabase: LocalSupabase, wire: Wire): SyncPeer {
  const client = createClient(supabase.url, supabase.serviceRoleKey, {
    auth: { persistSession: false, autoRefreshToken: false },
    realtime: { transport: WebSocket as never },
    global: { fetch: countingFetch(wire) },
  });
  return createSupabasePeer({ url: supabase.url, client, timeoutMs: 120_000 });
}

/** A network: branches with rooms and staff, patients, appointments, consultations; 5 % seen elsewhere too. */
async function seedNetwork(sql: postgres.Sql): Promise<string[]> {
  const branches = Array.from({ length: BRANCHES }, () => randomUUID());
  await sql.begin(async (tx) => {
    for (const [n, id] of branches.entries()) {
      await tx`insert into branches (id, code, name, address) values (${id}, ${`B-${n}`}, ${`Sucursal ${n}`}, 'Av. Reforma 1')`;
      await tx`insert into rooms (id, branch_id, name, kind)
        select gen_random_uuid(), ${id}, 'Consultorio ' || k, 'consultation' from generate_series(1, 4) k`;
      await tx`
        with staff as (
          insert into profiles (id, full_name) select gen_random_uuid(), 'Personal ' || k from generate_series(1, 10) k
          returning id)
        insert into user_branches (id, user_id, branch_id) select gen_random_uuid(), s.id, ${id} from staff s`;
    }
    await tx`insert into user_roles (id, user_id, role) select gen_random_uuid(), p.id, 'doctor' from profiles p`;
  });
  for (const id of branches) {
    await sql`
      insert into patients (id, branch_id, first_name, last_name, birth_date, sex, phone)
      select gen_random_uuid(), ${id}, 'Paciente ' || k, 'Red', date '1950-01-01' + k, 'unknown', '55 1234 5678'
      from generate_series(1, ${PATIENTS_PER_BRANCH}::int) k`;
  }
  for (const [n, id] of branches.entries()) {
    // Each branch's appointments: its own patients, and 5 % the next branch's (seen here too).
    const other = branches[(n + 1) % branches.length] as string;
    await sql`
      with p as (select array_agg(id order by id) ids from patients where branch_id = ${id}),
        q as (select array_agg(id order by id) ids from patients where branch_id = ${other}),
        d as (select array_agg(user_id) ids from user_branches where branch_id = ${id}),
        r as (select array_agg(id) ids from rooms where branch_id = ${id})
      insert into appointments (id, branch_id, room_id, patient_id, doctor_id, starts_at, ends_at, reason, type)
      select gen_random_uuid(), ${id}, r.ids[1 + k % 4],
        case when k % 20 = 0 then q.ids[1 + k % ${PATIENTS_PER_BRANCH}::int] else p.ids[1 + k % ${PATIENTS_PER_BRANCH}::int] end,
        d.ids[1 + k % 10], timestamptz '2026-01-05 09:00-06' + make_interval(mins => 20 * k),
        timestamptz '2026-01-05 09:20-06' + make_interval(mins => 20 * k), 'Revisión', 'follow_up'
      from generate_series(1, ${APPOINTMENTS_PER_BRANCH}::int) k, p, q, d, r`;
    await sql`
      insert into encounters (id, patient_id, appointment_id, branch_id, doctor_id, started_at, chief_complaint)
      select gen_random_uuid(), a.patient_id, a.id, a.branch_id, a.doctor_id, a.starts_at, 'Visión borrosa'
      from appointments a where a.branch_id = ${id} and a.starts_at < timestamptz '2026-03-01'`;
  }
  await sql`insert into exam_eye (id, encounter_id, eye, iop_mmhg)
    select gen_random_uuid(), e.id, eye::eye, 16 from encounters e, (values ('OD'), ('OS')) v(eye)`;
  await sql`insert into diagnoses (id, encounter_id, patient_id, icd10_code, description, diagnosed_at)
    select gen_random_uuid(), e.id, e.patient_id, 'H52.1', 'Miopía', e.started_at from encounters e`;
  return branches;
}

async function totalRows(sql: postgres.Sql): Promise<number> {
  let total = 0;
  for (const table of SYNCED_TABLES) {
    const [row] = await sql<{ n: number }[]>`select count(*)::int as n from ${sql(table)}`;
    total += row?.n ?? 0;
  }
  return total;
}

const cloudServer = await startPostgres({ superuser: SUPABASE_SUPERUSER });
const clinicServer = await startPostgres();
const supabase = await startLocalSupabase({ postgres: cloudServer, log: () => {} });
const cloud = postgres(supabase.dbUrl, { max: 4, onnotice: () => {} });
const closers: (() => Promise<unknown>)[] = [];
try {
  await cloud`select cv_sync_init('cloud')`;
  log(`seeding a network of ${BRANCHES} branches in the cloud…`);
  const branches = await seedNetwork(cloud);
  await cloud`vacuum analyze`;
  const whole = await totalRows(cloud);

  const clinics = [
    { name: "whole database (service key)", branches: null as string[] | null },
    { name: "clinic of 1 branch", branches: branches.slice(0, 1) },
    { name: "clinic of 2 branches", branches: branches.slice(1, 3) },
  ].map((c) => ({ ...c, wire: { sent: 0, received: 0 } as Wire }));
  log("");
  log(
    `initial sync of a ${whole.toLocaleString("en")}-row network into each clinic server, one after the other`,
  );
  const engines = [];
  const initial = [];
  for (const [n, clinic] of clinics.entries()) {
    const url = await clinicServer.createDatabase(`clinic_${n}`);
    await applyMigrations(url);
    const sql = postgres(url, { max: 2, onnotice: () => {} });
    await sql`select cv_sync_init(${`clinic_${n}`})`;
    const remote =
      clinic.branches === null
        ? servicePeer(supabase, clinic.wire)
        : await nodePeer(supabase, clinic.branches, clinic.wire);
    const local = createPostgresPeer({ url, timeoutMs: 120_000 });
    // An engine starts its first cycle at once: timed from its creation.
    const started = performance.now();
    const engine = createSyncEngine({ local, remote, intervalMs: 3_600_000 });
    const status = await engine.syncNow();
    if (status.lastError) throw new Error(`${clinic.name}: ${status.lastError.message}`);
    initial.push({
      clinic,
      ms: performance.now() - started,
      rows: await totalRows(sql),
      bytes: clinic.wire.received,
    });
    clinic.wire.received = 0;
    closers.push(
      () => engine.stop(),
      () => local.close(),
      () => remote.close(),
      () => sql.end(),
    );
    engines.push({ clinic, engine, sql, url });
  }

  const reference = initial[0] as (typeof initial)[number];
  for (const r of initial) {
    log(
      `  ${r.clinic.name.padEnd(30)} ${r.rows.toLocaleString("en").padStart(9)} rows (${pct(r.rows, reference.rows).padStart(7)})   ${mb(r.bytes).padStart(8)} (${pct(r.bytes, reference.bytes).padStart(7)})   ${(r.ms / 1000).toFixed(1)} s`,
    );
  }
  for (const r of initial.slice(1)) {
    reportFigure({
      figure: `initial sync pulled, ${r.clinic.name}`,
      unit: "MB",
      measured: r.bytes / 1_048_576,
      reference: { label: reference.clinic.name, value: reference.bytes / 1_048_576 },
      ratio: r.bytes / reference.bytes,
    });
  }

  log("");
  log("a day of edits across the network (one per patient of every branch), then one sync each");
  await cloud`update patients set phone = '55 8765 4321'`;
  await cloud`
    insert into appointments (id, branch_id, patient_id, starts_at, ends_at, reason, type)
    select gen_random_uuid(), p.branch_id, p.id, timestamptz '2026-12-07 09:00-06', timestamptz '2026-12-07 09:20-06',
      'Control', 'follow_up' from patients p where p.first_name like '%0'`;
  for (const { clinic, engine } of engines) {
    const before = clinic.wire.received;
    const status = await engine.syncNow();
    if (status.lastError) throw new Error(`${clinic.name}: ${status.lastError.message}`);
    const bytes = clinic.wire.received - before;
    log(`  ${clinic.name.padEnd(30)} ${mb(bytes).padStart(8)} pulled`);
  }

  log("");
  log(
    `what keeping scopes costs a write in the cloud: one appointment per transaction, ${WRITE_SAMPLES} each way, interleaved`,
  );
  const [patient] = await cloud<
    { id: string; branch_id: string }[]
  >`select id, branch_id from patients limit 1`;
  const samples: Record<"on" | "off", number[]> = { on: [], off: [] };
  for (let i = 0; i < 2 * WRITE_SAMPLES; i += 1) {
    const mode = i % 2 === 0 ? "on" : "off";
    await cloud.begin(async (tx) => {
      if (mode === "off") await tx`alter table cv_sync.change_log disable trigger cv_sync_track_scope`;
      const started = performance.now();
      await tx`insert into appointments (id, branch_id, patient_id, starts_at, ends_at, reason, type)
        values (${randomUUID()}, ${patient?.branch_id as string}, ${patient?.id as string}, now(), now() + interval '20 minutes',
          'Revisión', 'follow_up')`;
      samples[mode].push(performance.now() - started);
      if (mode === "off") await tx`alter table cv_sync.change_log enable trigger cv_sync_track_scope`;
    });
  }
  reportFigure({
    figure: "cloud write of one appointment, scopes kept, median",
    unit: "ms",
    measured: median(samples.on),
    reference: { label: "without scopes", value: median(samples.off) },
    ratio: median(samples.on) / median(samples.off),
  });

  log("");
  log(
    `push of ${PUSH_CHANGES.toLocaleString("en")} changes from a clinic into the cloud, best of 3 each, alternated`,
  );
  const scoped = engines[1] as (typeof engines)[number];
  const unscoped = engines[0] as (typeof engines)[number];
  const best: Record<"scoped" | "unscoped", number> = { scoped: Infinity, unscoped: Infinity };
  for (let round = 0; round < 6; round += 1) {
    const mode = round % 2 === 0 ? "scoped" : "unscoped";
    const { sql, engine } = mode === "scoped" ? scoped : unscoped;
    const branch = (mode === "scoped" ? scoped.clinic.branches?.[0] : branches[0]) as string;
    // Untimed: what the other round pushed is pulled first, so the timed cycle only pushes.
    await engine.syncNow();
    if (mode === "unscoped") await cloud`alter table cv_sync.change_log disable trigger cv_sync_track_scope`;
    await sql`
      insert into patients (id, branch_id, first_name, last_name, birth_date, sex, phone)
      select gen_random_uuid(), ${branch}, 'Empuje ' || k, ${`Ronda ${round}`}, date '1980-01-01', 'unknown', '55 0000 0000'
      from generate_series(1, ${PUSH_CHANGES}::int) k`;
    // Written by one of the branch's staff, as a signed-in person's writes are (the author, and
    // the writers cv_touch_row stamps): the cloud checks each against that author's rights.
    await sql`
      update cv_sync.change_log l set author = jsonb_build_object('user', ub.user_id, 'sign_in', 'clinic'),
        row_data = l.row_data || jsonb_build_object('created_by', ub.user_id, 'updated_by', ub.user_id)
      from (select user_id from user_branches where branch_id = ${branch} limit 1) ub
      where l.author is null and l.received_from is null and l.table_name = 'patients'`;
    const started = performance.now();
    const status = await engine.syncNow();
    const ms = performance.now() - started;
    if (mode === "unscoped") await cloud`alter table cv_sync.change_log enable trigger cv_sync_track_scope`;
    if (status.lastError) throw new Error(`${mode}: ${status.lastError.message}`);
    // A refused change is cheaper than an applied one: the figure counts only if all were applied.
    if (status.quarantined) throw new Error(`${mode}: the cloud quarantined ${status.quarantined} change(s)`);
    best[mode] = Math.min(best[mode], ms);
  }
  reportFigure({
    figure: `push of ${PUSH_CHANGES.toLocaleString("en")} changes, node credential (scope, author checked)`,
    unit: "rows/s",
    measured: PUSH_CHANGES / (best.scoped / 1000),
    reference: { label: "service key, no scopes", value: PUSH_CHANGES / (best.unscoped / 1000) },
    ratio: best.unscoped / best.scoped,
    goal: { of: "ratio", atLeast: 0.8 },
  });
} finally {
  for (const close of closers.reverse()) await close();
  await cloud.end();
  await supabase.stop();
  await Promise.all([cloudServer.stop(), clinicServer.stop()]);
}
