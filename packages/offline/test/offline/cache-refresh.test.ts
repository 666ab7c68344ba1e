import { randomUUID } from "node:crypto";
import { TABLE_NAMES } from "@centrovision/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { OfflineTier } from "../../src/index.js";
import type { OfflineScope } from "../../src/offline/offline-options.js";
import { openTier, type PcFiles, pcFiles, useClinicServer } from "./support.js";

/*
 * A clinic database of 50,000 patients; the PC keeps only its branch's agenda for the next days
 * and what hangs from it, within the configured bounds, and refreshes incrementally.
 */

const clinic = useClinicServer("offline_cache");
const BRANCH = randomUUID();
const OTHER = randomUUID();
const DOCTOR = randomUUID();
const scope: OfflineScope = {
  branchId: BRANCH,
  daysAhead: 7,
  maxAppointments: 400,
  encounterDays: 30,
  maxEncounters: 300,
};

let files: PcFiles;
let tier: OfflineTier;
let clock = new Date();

beforeAll(async () => {
  const sql = clinic.node.sql;
  // Stamped over the last hours (not all at one instant), so an incremental refresh can tell later
  // edits from the seed. Written as the sync brings rows from the cloud, verbatim: a local insert
  // would be stamped with the server's now() (sql/0002).
  await sql.begin(async (tx) => {
    await tx`select cv_sync.begin_apply(gen_random_uuid())`;
    await tx`insert into branches (id, code, name, address, updated_at) values
      (${BRANCH}, ${`ROMA-${BRANCH.slice(0, 4).toUpperCase()}`}, 'Roma', 'Av. Álvaro Obregón 121', now() - interval '1 hour'),
      (${OTHER}, ${`POL-${OTHER.slice(0, 4).toUpperCase()}`}, 'Polanco', 'Av. Presidente Masaryk 8', now() - interval '1 hour')`;
    await tx`insert into profiles (id, full_name, updated_at) values (${DOCTOR}, 'Dra. Lucía Hernández', now() - interval '1 hour')`;
    await tx`insert into user_branches (id, user_id, branch_id, updated_at) values (${randomUUID()}, ${DOCTOR}, ${BRANCH}, now() - interval '1 hour')`;
    await tx`insert into rooms (id, branch_id, name, kind, updated_at)
      select gen_random_uuid(), b, 'Consultorio ' || g, 'consultation', now() - interval '1 hour'
      from unnest(array[${BRANCH}::uuid, ${OTHER}::uuid]) b, generate_series(1, 4) g`;
    await tx`insert into patients (id, branch_id, first_name, last_name, birth_date, sex, phone, updated_at)
      select gen_random_uuid(), case when g % 2 = 0 then ${BRANCH}::uuid else ${OTHER}::uuid end,
        'Nombre ' || g, 'Apellido', date '1940-01-01' + (g % 20000), 'female', '55 1234 5678',
        now() - interval '1 hour' - (g % 1000) * interval '1 minute'
      from generate_series(1, 50000) g`;
    // 6,000 appointments over 60 days around today, half at this branch.
    await tx`insert into appointments (id, branch_id, patient_id, doctor_id, starts_at, ends_at, reason, type, updated_at)
      select gen_random_uuid(), p.branch_id, p.id, ${DOCTOR}::uuid,
        now() + ((p.n % 60) - 30) * interval '1 day' + (p.n % 9) * interval '30 minutes',
        now() + ((p.n % 60) - 30) * interval '1 day' + (p.n % 9) * interval '30 minutes' + interval '20 minutes',
        'Control', 'follow_up', now() - interval '1 hour' - (p.n % 1000) * interval '1 minute'
      from (select id, branch_id, row_number() over (order by id) as n from patients limit 6000) p`;
    await tx`insert into encounters (id, patient_id, appointment_id, branch_id, doctor_id, started_at, chief_complaint, updated_at)
      select gen_random_uuid(), a.patient_id, a.id, a.branch_id, a.doctor_id, a.starts_at, 'Revisión', now() - interval '1 hour' - random() * interval '1000 minutes'
      from appointments a where a.starts_at < now()`;
    await tx`insert into exam_eye (id, encounter_id, eye, iop_mmhg, updated_at)
      select gen_random_uuid(), e.id, 'OD', 18.5, now() - interval '1 hour' - random() * interval '1000 minutes' from encounters e`;
    await tx`insert into diagnoses (id, encounter_id, patient_id, icd10_code, description, diagnosed_at, updated_at)
      select gen_random_uuid(), e.id, e.patient_id, 'H52.1', 'Miopía', e.started_at, now() - interval '1 hour' - random() * interval '1000 minutes' from encounters e`;
  });
  // The PC's receptionist works at this branch only.
  await clinic.person.admit(BRANCH);
  files = await pcFiles();
  tier = await openTier(files, scope, { now: () => clock, overlapMs: 60_000 });
}, 120_000);
afterAll(async () => {
  await tier?.close();
  await files?.remove();
});

const total = (rows: Record<string, number>) => Object.values(rows).reduce((a, b) => a + b, 0);

describe("the PC's cache", () => {
  it("holds only its scope of a 50,000-patient clinic, within the configured bounds", async () => {
    const report = await tier.refresh(clinic.source, { timeoutMs: 60_000 });
    const [expected] = await clinic.node.sql<{ appointments: number; patients: number }[]>`
      with scoped as (
        select * from appointments
        where branch_id = ${BRANCH} and starts_at >= ${new Date(clock.getTime() - 86_400_000)}
          and starts_at < ${new Date(clock.getTime() + 8 * 86_400_000)}
        order by starts_at, id limit ${scope.maxAppointments ?? 0})
      select count(*)::int as appointments, count(distinct patient_id)::int as patients from scoped`;
    expect(expected?.appointments).toBe(scope.maxAppointments);
    expect(report.rows.patients).toBe(expected?.patients);
    expect(report.rows.encounters).toBeLessThanOrEqual(scope.maxEncounters ?? 0);
    expect(report.rows.encounters).toBeGreaterThan(0);
    // Past appointments come only as parents of kept encounters.
    expect(report.rows.appointments).toBeLessThanOrEqual(
      (scope.maxAppointments ?? 0) + (scope.maxEncounters ?? 0),
    );
    expect(report.rows.rooms).toBe(4);
    expect(report.rows.branches).toBe(1);
    const bound = 1 + 4 + 2 + 2 * (scope.maxAppointments ?? 0) + 3 * (scope.maxEncounters ?? 0) + 300 * 2;
    expect(total(report.rows)).toBeLessThanOrEqual(bound);
    const others = await tier.source.table("patients").list({ where: { branch_id: OTHER } });
    expect(others).toEqual([]);
  }, 120_000);

  it("refreshes incrementally: only rows changed since the last refresh travel", async () => {
    const [held] = await tier.source
      .table("appointments")
      .list({ limit: 1, orderBy: [{ column: "starts_at" }] });
    if (!held) throw new Error("no appointment cached");
    await clinic.node.sql`update appointments set status = 'confirmed' where id = ${held.id}`;
    const report = await tier.refresh(clinic.source, { timeoutMs: 60_000 });
    expect(report.full).toBe(false);
    expect(report.fetched, JSON.stringify(report.fetchedByTable)).toBeLessThan(30);
    expect(await tier.source.table("appointments").get(held.id)).toMatchObject({ status: "confirmed" });
  }, 120_000);

  it("evicts what left the scope, never a row with a pending local edit", async () => {
    const [patient] = await tier.source.table("patients").list({ limit: 1 });
    if (!patient) throw new Error("no patient cached");
    await tier.source.table("patients").update(patient.id, { phone: "55 9999 0000" });
    clock = new Date(clock.getTime() + 45 * 86_400_000);
    const report = await tier.refresh(clinic.source, { timeoutMs: 60_000 });
    expect(report.evicted).toBeGreaterThan(0);
    expect(report.rows.patients).toBe(1);
    expect(await tier.source.table("patients").get(patient.id)).toMatchObject({ phone: "55 9999 0000" });
    expect(await tier.pendingCount()).toBe(1);
    for (const table of TABLE_NAMES) expect(report.rows[table]).toBeGreaterThanOrEqual(0);
  }, 120_000);
});
