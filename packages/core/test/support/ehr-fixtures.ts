import { randomUUID } from "node:crypto";
import type postgres from "postgres";
import { type NewRow, TABLE_NAMES, type TableName } from "../../src/tables/index.js";

/** One valid row per table: a whole consultation at one branch. */
export type ClinicRows = { readonly [K in TableName]: NewRow<K> };

/**
 * A realistic, valid row graph (branch → … → diagnosis) with fresh ids, so several graphs can live
 * in one database. Every value passes both the zod schemas and the SQL CHECKs.
 */
export function clinicRows(): ClinicRows {
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

/** Inserts one row as given (no zod), the way a raw SQL client would. */
export async function insertRow(sql: postgres.Sql | postgres.TransactionSql, table: TableName, row: object) {
  await sql`insert into ${sql(table)} ${sql(row as Record<string, postgres.SerializableParameter>)}`;
}

/** Inserts a whole graph, parents first. */
export async function insertClinic(sql: postgres.Sql, rows: ClinicRows): Promise<void> {
  for (const table of TABLE_NAMES) await insertRow(sql, table, rows[table]);
}
