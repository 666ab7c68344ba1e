import { randomUUID } from "node:crypto";
import { SYNCED_TABLES, type TableName } from "@centrovision/core";
import type postgres from "postgres";

export type Row = Record<string, postgres.SerializableParameter> & { id: string };

/**
 * One valid row per synced table: a whole consultation at one branch (branch → … → diagnosis),
 * every column filled where the schema allows, with fresh ids and unique keys, so several can live
 * in one database. Every value passes both the zod schemas and the SQL CHECKs.
 */
export type Consultation = { readonly [K in TableName]: Row };

export function consultation(): Consultation {
  const id = () => randomUUID();
  const tag = randomUUID().slice(0, 8).toUpperCase();
  const branch = id();
  const room = id();
  const doctor = id();
  const patient = id();
  const appointment = id();
  const encounter = id();
  return {
    branches: {
      id: branch,
      code: `CDMX-${tag}`,
      name: "Centro Oftalmológico Roma",
      address: "Av. Álvaro Obregón 121, Roma Nte., Ciudad de México",
      phone: "+52 55 5264 1200",
      timezone: "America/Mexico_City",
    },
    rooms: { id: room, branch_id: branch, name: "Consultorio 1", kind: "consultation" },
    profiles: {
      id: doctor,
      full_name: "Dra. Lucía Hernández Ruiz",
      email: `lucia.${tag.toLowerCase()}@example.mx`,
      professional_license: "12345678",
    },
    user_roles: { id: id(), user_id: doctor, role: "doctor" },
    user_branches: { id: id(), user_id: doctor, branch_id: branch },
    patients: {
      id: patient,
      branch_id: branch,
      first_name: "José",
      last_name: "Núñez",
      second_last_name: "García",
      document_id: `NUGJ${tag}`,
      birth_date: "1950-01-31",
      sex: "male",
      phone: "55 1234 5678",
      email: null,
      allergies: "Penicilina",
    },
    appointments: {
      id: appointment,
      branch_id: branch,
      room_id: room,
      patient_id: patient,
      doctor_id: doctor,
      starts_at: "2025-03-03T09:00:00-06:00",
      ends_at: "2025-03-03T09:30:00-06:00",
      status: "checked_in",
      reason: "Control de glaucoma",
      type: "follow_up",
      checked_in_at: "2025-03-03T08:55:00-06:00",
    },
    encounters: {
      id: encounter,
      patient_id: patient,
      appointment_id: appointment,
      branch_id: branch,
      doctor_id: doctor,
      started_at: "2025-03-03T09:02:00-06:00",
      chief_complaint: "Visión borrosa de lejos en ojo derecho",
    },
    exam_eye: {
      id: id(),
      encounter_id: encounter,
      eye: "OD",
      uncorrected_va: "20/80",
      uncorrected_va_logmar: 0.6,
      best_corrected_va: "20/25-2",
      best_corrected_va_logmar: 0.14,
      iop_mmhg: 24.5,
      iop_method: "goldmann",
      refraction_sphere: -2.25,
      refraction_cylinder: -0.75,
      refraction_axis: 90,
      refraction_add: 2.5,
      pupil: "Isocórica, normorreactiva",
      anterior_segment: "Cámara anterior formada, cristalino transparente",
      posterior_segment: "Excavación 0.7, anillo neurorretiniano adelgazado",
    },
    diagnoses: {
      id: id(),
      encounter_id: encounter,
      patient_id: patient,
      icd10_code: "H40.1",
      description: "Glaucoma primario de ángulo abierto",
      eye: "OU",
      diagnosed_at: "2025-03-03T09:20:00-06:00",
    },
  };
}

/** A patient of an existing branch. */
export function patient(branchId: string, label: string): Row {
  return {
    id: randomUUID(),
    branch_id: branchId,
    first_name: label,
    last_name: "Ramírez",
    birth_date: "1980-01-01",
    sex: "unknown",
    phone: "55 5555 0000",
  };
}

export async function insert(
  sql: postgres.Sql | postgres.TransactionSql,
  table: TableName,
  row: Row,
): Promise<void> {
  await sql`insert into ${sql(table)} ${sql(row)}`;
}

/** Inserts a consultation, parents first, in one transaction (as an app would). */
export async function insertConsultation(sql: postgres.Sql, rows: Consultation): Promise<void> {
  await sql.begin(async (tx) => {
    for (const table of SYNCED_TABLES) await insert(tx, table, rows[table]);
  });
}

/** Updates columns of one row as an app would: the triggers stamp version and base_version. */
export async function update(
  sql: postgres.Sql,
  table: TableName,
  id: string,
  values: Record<string, postgres.SerializableParameter>,
): Promise<void> {
  await sql`update ${sql(table)} set ${sql(values)} where id = ${id}`;
}

export async function remove(sql: postgres.Sql, table: TableName, id: string): Promise<void> {
  await sql`delete from ${sql(table)} where id = ${id}`;
}

/** One row as JSON, or undefined. */
export async function rowOf(
  sql: postgres.Sql,
  table: TableName,
  id: string,
): Promise<Record<string, unknown> | undefined> {
  const [found] = await sql<
    { row: Record<string, unknown> }[]
  >`select to_jsonb(t) as row from ${sql(table)} t where id = ${id}`;
  return found?.row;
}
