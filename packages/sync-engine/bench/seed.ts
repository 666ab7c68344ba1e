import { randomUUID } from "node:crypto";
import type postgres from "postgres";

/** A new patient of `branchId`, as the benches write them. */
export function newPatient(branchId: string, label: string) {
  return {
    id: randomUUID(),
    branch_id: branchId,
    first_name: label,
    last_name: "Estable",
    birth_date: "1990-01-01",
    sex: "unknown",
    phone: "55 0000 0000",
    notes: String(Date.now()),
  };
}

/**
 * `rows` appointment-like rows in the cloud, with the parents they need (a branch, 10 rooms,
 * 20 doctors, 10,000 patients), written the way the apps write them: through the triggers, so
 * every row has its row_state and log entry.
 */
export async function seedAppointments(sql: postgres.Sql, rows: number): Promise<void> {
  const [branch] = await sql<{ id: string }[]>`
    insert into branches (id, code, name, address) values (gen_random_uuid(), 'BENCH', 'Clínica Bench', 'Av. Reforma 1')
    returning id`;
  const branchId = branch?.id as string;
  await sql`
    insert into rooms (id, branch_id, name, kind)
    select gen_random_uuid(), ${branchId}, 'Consultorio ' || n, 'consultation' from generate_series(1, 10) n`;
  await sql`
    insert into profiles (id, full_name, email)
    select gen_random_uuid(), 'Doctor ' || n, 'doctor' || n || '@bench.example' from generate_series(1, 20) n`;
  await sql`
    insert into patients (id, branch_id, first_name, last_name, birth_date, sex, phone)
    select gen_random_uuid(), ${branchId}, 'Paciente ' || n, 'Benchmark', date '1950-01-01' + (n % 20000), 'unknown', '55 1234 5678'
    from generate_series(1, 10000) n`;
  // Chunks, each after an ANALYZE: on a fresh cloud one 100,000-row statement ran over ten
  // minutes, its per-row scope work slowing as the table grew inside the statement (lookups
  // planned while appointments was empty; forcing custom plans only halved it). Chunked, the whole
  // seed takes about two and a half minutes.
  const chunk = 10_000;
  for (let done = 0; done < rows; done += chunk) {
    await sql`analyze appointments, patients, profiles, rooms`;
    await sql`
      with r as (select array_agg(id) ids from rooms), d as (select array_agg(id) ids from profiles),
        p as (select array_agg(id) ids from patients)
      insert into appointments (id, branch_id, room_id, patient_id, doctor_id, starts_at, ends_at, status, reason, type, notes)
      select gen_random_uuid(), ${branchId}, r.ids[1 + n % 10], p.ids[1 + n % 10000], d.ids[1 + n % 20],
        timestamptz '2025-01-06 09:00-06' + make_interval(mins => 20 * n),
        timestamptz '2025-01-06 09:20-06' + make_interval(mins => 20 * n),
        'scheduled', 'Revisión de agudeza visual y presión intraocular', 'follow_up',
        case when n % 3 = 0 then 'Traer lentes actuales' end
      from generate_series(${done + 1}::int, ${Math.min(rows, done + chunk)}::int) n, r, d, p`;
  }
}

/** Row count of every synced table that holds rows here, for sanity. */
export async function countRows(sql: postgres.Sql, table: string): Promise<number> {
  const [row] = await sql<{ n: number }[]>`select count(*)::int as n from ${sql(table)}`;
  return row?.n ?? 0;
}
