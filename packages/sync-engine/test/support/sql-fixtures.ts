import { randomUUID } from "node:crypto";
import type { TableName } from "@centrovision/core";
import type postgres from "postgres";
import { insertConsultation } from "./fixtures.js";

export type Row = Record<string, postgres.SerializableParameter>;

/** One valid row per synced table: a whole consultation at one branch, with fresh ids. */
export type Clinic = { readonly [K in TableName]: Row & { id: string } };

export function clinic(): Clinic {
  const id = () => randomUUID();
  const tag = randomUUID().slice(0, 8).toUpperCase();
  const [branch, room, doctor, patient, appointment, encounter] = [id(), id(), id(), id(), id(), id()];
  return {
    branches: { id: branch, code: `CDMX-${tag}`, name: "Centro Roma", address: "Av. Álvaro Obregón 121" },
    rooms: { id: room, branch_id: branch, name: "Consultorio 1", kind: "consultation" },
    profiles: {
      id: doctor,
      full_name: "Dra. Lucía Hernández",
      email: `lucia.${tag.toLowerCase()}@example.mx`,
    },
    user_roles: { id: id(), user_id: doctor, role: "doctor" },
    user_branches: { id: id(), user_id: doctor, branch_id: branch },
    patients: {
      id: patient,
      branch_id: branch,
      first_name: "José",
      last_name: "Núñez",
      document_id: `NUGJ${tag}`,
      birth_date: "1950-01-31",
      sex: "male",
      phone: "55 1234 5678",
    },
    appointments: {
      id: appointment,
      branch_id: branch,
      room_id: room,
      patient_id: patient,
      doctor_id: doctor,
      starts_at: "2025-03-03T09:00:00-06:00",
      ends_at: "2025-03-03T09:30:00-06:00",
      reason: "Control de glaucoma",
      type: "follow_up",
    },
    encounters: {
      id: encounter,
      patient_id: patient,
      appointment_id: appointment,
      branch_id: branch,
      doctor_id: doctor,
      started_at: "2025-03-03T09:02:00-06:00",
      chief_complaint: "Visión borrosa",
    },
    exam_eye: { id: id(), encounter_id: encounter, eye: "OD", iop_mmhg: 24.5, refraction_sphere: -2.25 },
    diagnoses: {
      id: id(),
      encounter_id: encounter,
      patient_id: patient,
      icd10_code: "H40.1",
      description: "Glaucoma primario de ángulo abierto",
      diagnosed_at: "2025-03-03T09:20:00-06:00",
    },
  };
}

export { insert } from "./fixtures.js";

/** Inserts the whole graph, parents first, in one transaction. */
export const insertClinic: (sql: postgres.Sql, rows: Clinic) => Promise<void> = insertConsultation;

/** Updates columns of one row, as an app would (the triggers stamp the version). */
export async function update(sql: postgres.Sql, table: TableName, id: string, values: Row): Promise<void> {
  await sql`update ${sql(table)} set ${sql(values)} where id = ${id}`;
}

/** One row as JSON (or undefined), for assertions. */
export async function rowOf(
  sql: postgres.Sql,
  table: TableName,
  id: string,
): Promise<Record<string, unknown> | undefined> {
  const [found] = await sql<{ row: Record<string, unknown> }[]>`
    select to_jsonb(t) as row from ${sql(table)} t where id = ${id}`;
  return found?.row;
}
