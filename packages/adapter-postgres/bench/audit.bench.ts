/**
 * What the audit trail (sql/0012) costs a write: the same update of one patient by a verified
 * person through createPostgresSource, on two clinic databases seeded alike, one with the audit
 * trigger and one with it disabled. Calls are interleaved one by one and medians compared (see
 * overhead.bench.ts why). Target: ≤ 1.15×. Then the trail's storage per 10,000 writes, and what
 * sealing them costs.
 *
 *   npm run bench -w @centrovision/adapter-postgres        CV_BENCH_ROUNDS=5000 for more samples
 */
import { applyMigrations, clinicSession, startPostgres } from "@centrovision/testkit";
import postgres from "postgres";
import { createPostgresSource } from "../src/index.js";
import { compare, report } from "./interleave.js";

const ROUNDS = Number(process.env.CV_BENCH_ROUNDS ?? 2_000);
const TARGET = 1.15;
const PATIENTS = 2_000;
const WRITES = 10_000;

/** A clinic database with one branch, its patients and a doctor working there; a PC login acting as her. */
async function clinicDatabase(
  server: Awaited<ReturnType<typeof startPostgres>>,
  name: string,
  audit: boolean,
) {
  const url = await server.createDatabase(name);
  await applyMigrations(url);
  const owner = postgres(url, { max: 1, onnotice: () => {} });
  const branch = crypto.randomUUID();
  const doctor = crypto.randomUUID();
  await owner.begin(async (tx) => {
    await tx`insert into branches (id, code, name, address) values (${branch}, 'ROMA', 'Roma', 'Av. Álvaro Obregón 121')`;
    await tx`insert into profiles (id, full_name, email) values (${doctor}, 'Dra. Lucía Hernández', 'lucia@example.mx')`;
    await tx`insert into user_branches (id, user_id, branch_id) values (gen_random_uuid(), ${doctor}, ${branch})`;
    await tx`
      insert into patients (id, branch_id, first_name, last_name, birth_date, sex, phone)
      select gen_random_uuid(), ${branch}, 'Paciente ' || n, 'Apellido ' || n, date '1950-01-01' + n, 'female', '55 5264 1200'
      from generate_series(1, ${PATIENTS}) n`;
  });
  if (!audit) await owner`alter table cv_sync.change_log disable trigger cv_audit_record_change`;
  await owner`analyze`;
  await owner.unsafe(
    `drop role if exists bench_audit_${name}; create role bench_audit_${name} login password 'bench' in role centrovision_app`,
  );
  const pc = new URL(url);
  pc.username = `bench_audit_${name}`;
  pc.password = "bench";
  const token = await clinicSession(url, { userId: doctor, expiresInSeconds: 6 * 3600 });
  const ids = (await owner<{ id: string }[]>`select id from patients order by id`).map((row) => row.id);
  const source = createPostgresSource({ url: pc.href, max: 5, session: () => token });
  return { owner, source, ids };
}

const server = await startPostgres();
try {
  const [audited, plain] = [
    await clinicDatabase(server, "audited", true),
    await clinicDatabase(server, "plain", false),
  ];
  let next = 0;
  const update = (db: typeof audited) => {
    const id = db.ids[next++ % PATIENTS] as string;
    return db.source
      .table("patients")
      .update(id, { phone: `55 ${String(next % 10_000).padStart(4, "0")} 1200` });
  };
  console.log(
    `a verified person's update of one patient, audit trail on vs off, median of ${ROUNDS} interleaved calls ` +
      `(${new Date().toISOString()})\n`,
  );
  report(
    "update: one patient, audit trail on",
    "audit trail off",
    await compare(
      () => update(audited),
      () => update(plain),
      ROUNDS,
    ),
    TARGET,
  );

  const [before] = await audited.owner<{ n: number; bytes: number }[]>`
    select count(*)::int as n, pg_total_relation_size('cv_audit.events')::bigint as bytes from cv_audit.events`;
  for (let i = 0; i < WRITES; i++) await update(audited);
  const [after] = await audited.owner<{ n: number; bytes: number }[]>`
    select count(*)::int as n, pg_total_relation_size('cv_audit.events')::bigint as bytes from cv_audit.events`;
  const events = (after?.n ?? 0) - (before?.n ?? 0);
  const bytes = Number(after?.bytes ?? 0) - Number(before?.bytes ?? 0);
  const started = performance.now();
  const [sealed] = await audited.owner<{ n: number }[]>`select public.cv_audit_seal(1000000) as n`;
  const sealMs = performance.now() - started;
  const verifyStarted = performance.now();
  const [verified] = await audited.owner<
    { ok: boolean }[]
  >`select (public.cv_audit_verify() ->> 'ok')::boolean as ok`;
  const verifyMs = performance.now() - verifyStarted;
  console.log(
    `\nthe trail after ${WRITES.toLocaleString("en")} more writes: ${events.toLocaleString("en")} events, ` +
      `${(bytes / 1024 / 1024).toFixed(1)} MB (table and indexes), ${Math.round(bytes / Math.max(events, 1))} B per event`,
  );
  console.log(
    `sealing ${sealed?.n} events: ${sealMs.toFixed(0)} ms (${((sealMs * 1000) / Math.max(sealed?.n ?? 1, 1)).toFixed(0)} µs each); ` +
      `verifying the chain: ${verifyMs.toFixed(0)} ms, ${verified?.ok ? "intact" : "BROKEN"}`,
  );
  await Promise.all([audited.source.close(), plain.source.close(), audited.owner.end(), plain.owner.end()]);
} finally {
  await server.stop();
}
