/**
 * What a verified person costs on the clinic server: the same read through `createPostgresSource`,
 * once by a PC login acting as a signed-in person (role `authenticated`; sql/0003 verifies the
 * clinic session on every statement, sql/0004's policies decide what it sees) and once by the
 * tables' owner, who bypasses both. Target: person ≤ 1.3× owner.
 *
 * One clinic database, 2 branches × 5,000 patients, each with an appointment (50 a day per
 * branch). The person is a doctor of the first branch and both sides ask for that branch's rows,
 * so both get the same answer. Calls are interleaved one by one and medians compared (see
 * overhead.bench.ts why). Then, inside the server (one statement's execution, no planning, no round
 * trip): what finding the person's remembered session costs (their branches, their claims), what
 * the policies and the session add to a statement, and that a read no longer verifies in full.
 *
 *   npm run bench -w @centrovision/adapter-postgres        CV_BENCH_ROUNDS=5000 for more samples
 */
import { applyMigrations, clinicSession, reportFigure, startPostgres } from "@centrovision/testkit";
import postgres from "postgres";
import { createPostgresSource } from "../src/index.js";
import { compare, median, report, us } from "./interleave.js";

const ROUNDS = Number(process.env.CV_BENCH_ROUNDS ?? 3_000);
const TARGET = 1.3;
const PATIENTS_PER_BRANCH = 5_000;
const PER_DAY = 50;
const FIRST_DAY = Date.parse("2025-03-03T06:00:00Z");

/** Two branches, a doctor at the first, and each branch's patients with one appointment each. */
async function seed(owner: postgres.Sql) {
  const [ids] = await owner<{ north: string; south: string; doctor: string }[]>`
    select gen_random_uuid() as north, gen_random_uuid() as south, gen_random_uuid() as doctor`;
  if (ids === undefined) throw new Error("[rls.bench] no ids");
  await owner.begin(async (tx) => {
    await tx`insert into branches (id, code, name, address) values
      (${ids.north}, 'ROMA', 'Roma', 'Av. Álvaro Obregón 121'),
      (${ids.south}, 'COYO', 'Coyoacán', 'Av. Universidad 1900')`;
    await tx`insert into rooms (id, branch_id, name, kind)
      select gen_random_uuid(), id, 'Consultorio 1', 'consultation' from branches`;
    await tx`insert into profiles (id, full_name, email) values (${ids.doctor}, 'Dra. Lucía Hernández', 'lucia@example.mx')`;
    await tx`insert into user_roles (id, user_id, role) values (gen_random_uuid(), ${ids.doctor}, 'doctor')`;
    await tx`insert into user_branches (id, user_id, branch_id) values (gen_random_uuid(), ${ids.doctor}, ${ids.north})`;
    await tx`
      insert into patients (id, branch_id, first_name, last_name, birth_date, sex, phone)
      select gen_random_uuid(), b.id, 'Paciente ' || n, 'Apellido ' || lpad(n::text, 5, '0'), date '1950-01-01' + n,
        'female', '55 5264 1200'
      from branches b, generate_series(1, ${PATIENTS_PER_BRANCH}) n`;
    await tx`
      insert into appointments (id, branch_id, room_id, patient_id, doctor_id, starts_at, ends_at, status, reason, type)
      select gen_random_uuid(), p.branch_id, r.id, p.id, ${ids.doctor}, s.starts_at, s.starts_at + interval '20 minutes',
        'scheduled', 'Control', 'follow_up'
      from (select p.*, row_number() over (partition by p.branch_id order by p.last_name) - 1 as n
            from patients p) p
      join rooms r on r.branch_id = p.branch_id
      cross join lateral (select ${new Date(FIRST_DAY).toISOString()}::timestamptz + interval '2 hours'
        + (p.n / ${PER_DAY}) * interval '1 day' + (p.n % ${PER_DAY}) * interval '10 minutes' as starts_at) s`;
  });
  await owner`analyze`;
  return ids;
}

/**
 * Server-side µs of one top-level execution of `statement` on `sql`: the median of `n` runs'
 * "Execution Time" under EXPLAIN (ANALYZE, TIMING OFF), i.e. without planning (a prepared
 * statement) or the round trip. A loop inside one PL/pgSQL call would understate it: what a
 * statement pays once (a SECURITY DEFINER call's set-up, its first SPI query) would be paid once
 * per loop.
 */
async function executionMicros(sql: postgres.Sql, statement: string, n = 200): Promise<number> {
  await sql.unsafe("deallocate all");
  await sql.unsafe(`prepare cv_bench as ${statement}`);
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const plan = await sql.unsafe("explain (analyze, timing off, summary) execute cv_bench");
    const line = plan.map((row) => String(Object.values(row)[0])).find((l) => l.startsWith("Execution Time"));
    samples.push(Number(/([\d.]+) ms/.exec(line ?? "")?.[1]) * 1000);
  }
  return median(samples.slice(n / 4));
}

const server = await startPostgres();
try {
  const ownerUrl = await server.createDatabase("bench_rls");
  await applyMigrations(ownerUrl);
  const owner = postgres(ownerUrl, { max: 1, onnotice: () => {} });
  const ids = await seed(owner);
  await owner.unsafe(`create role bench_pc login password 'bench-pc' in role centrovision_app`);
  const pcUrl = new URL(ownerUrl);
  pcUrl.username = "bench_pc";
  pcUrl.password = "bench-pc";
  const token = await clinicSession(ownerUrl, { userId: ids.doctor, expiresInSeconds: 6 * 3600 });

  // Same pool size both ways and no link in between: this measures the server's checks, not a network.
  const asOwner = createPostgresSource({ url: ownerUrl, max: 5 });
  const asPerson = createPostgresSource({ url: pcUrl.href, max: 5, session: () => token });

  const northPatients = (
    await owner<{ id: string }[]>`select id from patients where branch_id = ${ids.north} order by id`
  ).map((row) => row.id);
  let next = 0;
  const nextPatient = () => northPatients[next++ % northPatients.length] as string;
  const page = () => ({
    where: { branch_id: ids.north },
    orderBy: [{ column: "last_name" as const }],
    limit: 50,
    offset: 50 * (next++ % (PATIENTS_PER_BRANCH / 50)),
  });
  const day = () => {
    const from = FIRST_DAY + (next++ % (PATIENTS_PER_BRANCH / PER_DAY)) * 86_400_000;
    return {
      where: {
        branch_id: ids.north,
        starts_at: { gte: new Date(from).toISOString(), lt: new Date(from + 86_400_000).toISOString() },
      },
      orderBy: [{ column: "starts_at" as const }],
    };
  };
  const [firstPage, firstDay] = await Promise.all([
    asPerson.table("patients").list(page()),
    asPerson.table("appointments").list(day()),
  ]);
  if (firstPage.length !== 50 || firstDay.length !== PER_DAY) {
    throw new Error("[rls.bench] the person does not see their branch's rows");
  }

  console.log(
    `verified person (RLS) vs table owner through createPostgresSource, median of ${ROUNDS} interleaved calls ` +
      `(${new Date().toISOString()})\n`,
  );
  report(
    "get: one patient by id, as a person",
    "the tables' owner",
    await compare(
      () => asPerson.table("patients").get(nextPatient()),
      () => asOwner.table("patients").get(nextPatient()),
      ROUNDS,
    ),
    TARGET,
  );
  report(
    "list: a page of 50 patients of a branch, as a person",
    "the tables' owner",
    await compare(
      () => asPerson.table("patients").list(page()),
      () => asOwner.table("patients").list(page()),
      ROUNDS,
    ),
    TARGET,
  );
  report(
    "list: a branch's appointments of one day, as a person",
    "the tables' owner",
    await compare(
      () => asPerson.table("appointments").list(day()),
      () => asOwner.table("appointments").list(day()),
      ROUNDS,
    ),
    TARGET,
  );
  await Promise.all([asOwner.close(), asPerson.close()]);

  const person = postgres(pcUrl.href, {
    max: 1,
    onnotice: () => {},
    connection: { role: "authenticated", "centrovision.session": token },
  });
  const getOne = `select * from public.patients where id = '${northPatients[0]}'`;
  const ownerGet = await executionMicros(owner, getOne);
  const personGet = await executionMicros(person, getOne);
  const nothing = await executionMicros(person, "select 1");
  const branches = (await executionMicros(person, "select public.cv_user_branch_ids()")) - nothing;
  const claims = (await executionMicros(person, "select cv_auth.claims()")) - nothing;
  console.log("\ninside the server (median execution time of one statement, EXPLAIN ANALYZE, timing off)");
  console.log(`${"cv_user_branch_ids(): the person's branches".padEnd(42)} ${us(branches / 1000)}`);
  console.log(`${"cv_auth.claims(): the person's claims".padEnd(42)} ${us(claims / 1000)}`);
  reportFigure({
    figure: "get by id inside the server, as a person",
    unit: "µs",
    measured: personGet,
    reference: { label: "the tables' owner", value: ownerGet },
    ratio: personGet / ownerGet,
  });

  console.log("\nfull verifications per read once the session is remembered (track_functions)");
  const reads: [string, string][] = [
    ["get: one patient by id", `select * from patients where id = '${northPatients[0]}'`],
    [
      "list: a page of 50 patients",
      `select * from patients where branch_id = '${ids.north}' order by last_name collate "C", id limit 50 offset 2500`,
    ],
    [
      "list: appointments of one day",
      `select * from appointments where branch_id = '${ids.north}' and starts_at >= '2025-03-10T06:00:00Z'
       and starts_at < '2025-03-11T06:00:00Z' order by starts_at, id`,
    ],
  ];
  for (const [label, statement] of reads) {
    await owner.begin(async (tx) => {
      await tx`set local track_functions = 'all'`;
      await tx`select set_config('centrovision.session', ${token}, true)`;
      await tx`set local role authenticated`;
      // The first run verifies the session (or finds it remembered) and plans the helpers' queries.
      await tx.unsafe(statement);
      const before =
        await tx`select coalesce(sum(calls), 0)::int as n from pg_stat_xact_user_functions where funcname = 'verify'`;
      await tx.unsafe(statement);
      const after =
        await tx`select coalesce(sum(calls), 0)::int as n from pg_stat_xact_user_functions where funcname = 'verify'`;
      console.log(`${label.padEnd(42)} ${(after[0]?.n ?? 0) - (before[0]?.n ?? 0)}`);
      await tx`reset role`;
    });
  }
  await Promise.all([person.end(), owner.end()]);
} finally {
  await server.stop();
}
