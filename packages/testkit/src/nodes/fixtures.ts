import { randomUUID } from "node:crypto";
import { SYNCED_TABLES, type TableName } from "@centrovision/core";
import type postgres from "postgres";

export type Row = Record<string, postgres.SerializableParameter> & { id: string };

/** One valid row per synced table: a consultation at a branch, with fresh ids and unique keys. */
export type Consultation = { readonly [K in TableName]: Row };

export function consultation(): Consultation {
  const id = () => randomUUID();
  const tag = randomUUID().slice(0, 8).toUpperCase();
  const [branch, room, doctor, patient, appointment, encounter] = [id(), id(), id(), id(), id(), id()];
  return {
    branches: {
      id: branch,
      code: `GDL-${tag}`,
      name: "Clínica Chapultepec",
      address: "Av. Chapultepec 480, Guadalajara",
    },
    rooms: { id: room, branch_id: branch, name: `Consultorio ${tag}`, kind: "consultation" },
    profiles: { id: doctor, full_name: "Dr. Andrés Zúñiga", email: `andres.${tag.toLowerCase()}@example.mx` },
    user_roles: { id: id(), user_id: doctor, role: "doctor" },
    user_branches: { id: id(), user_id: doctor, branch_id: branch },
    patients: {
      id: patient,
      branch_id: branch,
      first_name: "María José",
      last_name: "Peña",
      document_id: `PEMJ${tag}`,
      birth_date: "1962-07-14",
      sex: "female",
      phone: "33 3615 0000",
    },
    appointments: {
      id: appointment,
      branch_id: branch,
      room_id: room,
      patient_id: patient,
      doctor_id: doctor,
      starts_at: "2025-04-07T10:00:00-06:00",
      ends_at: "2025-04-07T10:30:00-06:00",
      reason: "Revisión de presión intraocular",
      type: "follow_up",
    },
    encounters: {
      id: encounter,
      patient_id: patient,
      appointment_id: appointment,
      branch_id: branch,
      doctor_id: doctor,
      started_at: "2025-04-07T10:03:00-06:00",
      chief_complaint: "Halos alrededor de las luces",
    },
    exam_eye: { id: id(), encounter_id: encounter, eye: "OS", iop_mmhg: 21.0, refraction_sphere: -1.5 },
    diagnoses: {
      id: id(),
      encounter_id: encounter,
      patient_id: patient,
      icd10_code: "H40.1",
      description: "Glaucoma primario de ángulo abierto",
      diagnosed_at: "2025-04-07T10:20:00-06:00",
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
