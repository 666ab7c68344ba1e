import { randomUUID } from "node:crypto";
import type { NewRow, TableName } from "@centrovision/core";

type Overrides<T extends TableName> = Partial<NewRow<T>>;

/**
 * Builds valid rows for every table, linked by foreign keys, with fresh ids.
 * `clinic()` returns one coherent row per table in foreign-key order, which is
 * the order they must be written in.
 */
export function createFixtures() {
  const branch = (o: Overrides<"branches"> = {}): NewRow<"branches"> => ({
    id: randomUUID(),
    code: `SUC-${randomUUID().slice(0, 8).toUpperCase()}`,
    name: "Clínica Oftalmológica Centro",
    address: "Av. Insurgentes Sur 1234, Ciudad de México",
    phone: "+52 55 1234 5678",
    ...o,
  });
  const room = (branchId: string, o: Overrides<"rooms"> = {}): NewRow<"rooms"> => ({
    id: randomUUID(),
    branch_id: branchId,
    name: `Consultorio ${randomUUID().slice(0, 4)}`,
    kind: "consultation",
    ...o,
  });
  const profile = (o: Overrides<"profiles"> = {}): NewRow<"profiles"> => ({
    id: randomUUID(),
    full_name: "Dra. María José Núñez Ibáñez",
    email: `doctora.${randomUUID().slice(0, 8)}@centrovision.mx`,
    professional_license: "12345678",
    ...o,
  });
  const patient = (branchId: string, o: Overrides<"patients"> = {}): NewRow<"patients"> => ({
    id: randomUUID(),
    branch_id: branchId,
    first_name: "José Ángel",
    last_name: "Peña",
    second_last_name: "Güemes",
    document_id: `CURP${randomUUID().slice(0, 12).toUpperCase()}`,
    birth_date: "1958-03-14",
    sex: "male",
    phone: "+52 55 8765 4321",
    ...o,
  });
  const appointment = (
    ids: { branchId: string; patientId: string; roomId?: string; doctorId?: string },
    o: Overrides<"appointments"> = {},
  ): NewRow<"appointments"> => ({
    id: randomUUID(),
    branch_id: ids.branchId,
    patient_id: ids.patientId,
    room_id: ids.roomId ?? null,
    doctor_id: ids.doctorId ?? null,
    starts_at: "2026-11-30T09:00:00-06:00",
    ends_at: "2026-11-30T09:30:00-06:00",
    reason: "Revisión de presión intraocular",
    type: "follow_up",
    ...o,
  });
  const encounter = (
    ids: { branchId: string; patientId: string; doctorId: string; appointmentId?: string },
    o: Overrides<"encounters"> = {},
  ): NewRow<"encounters"> => ({
    id: randomUUID(),
    patient_id: ids.patientId,
    appointment_id: ids.appointmentId ?? null,
    branch_id: ids.branchId,
    doctor_id: ids.doctorId,
    started_at: "2026-11-30T15:05:00.000Z",
    chief_complaint: "Visión borrosa en ojo derecho",
    ...o,
  });
  const examEye = (encounterId: string, o: Overrides<"exam_eye"> = {}): NewRow<"exam_eye"> => ({
    id: randomUUID(),
    encounter_id: encounterId,
    eye: "OD",
    uncorrected_va: "20/80",
    best_corrected_va: "20/25-2",
    best_corrected_va_logmar: 0.1,
    iop_mmhg: 21.5,
    iop_method: "goldmann",
    refraction_sphere: -2.25,
    refraction_cylinder: -0.75,
    refraction_axis: 180,
    ...o,
  });
  const diagnosis = (
    ids: { encounterId: string; patientId: string },
    o: Overrides<"diagnoses"> = {},
  ): NewRow<"diagnoses"> => ({
    id: randomUUID(),
    encounter_id: ids.encounterId,
    patient_id: ids.patientId,
    icd10_code: "H40.1",
    description: "Glaucoma primario de ángulo abierto",
    eye: "OD",
    diagnosed_at: "2026-11-30T15:20:00.000Z",
    ...o,
  });

  /** One row per table, linked, in foreign-key order. */
  function clinic() {
    const b = branch();
    const r = room(b.id);
    const doctor = profile();
    const role: NewRow<"user_roles"> = { id: randomUUID(), user_id: doctor.id, role: "doctor" };
    const membership: NewRow<"user_branches"> = { id: randomUUID(), user_id: doctor.id, branch_id: b.id };
    const p = patient(b.id);
    const a = appointment({ branchId: b.id, patientId: p.id, roomId: r.id, doctorId: doctor.id });
    const e = encounter({ branchId: b.id, patientId: p.id, doctorId: doctor.id, appointmentId: a.id });
    const x = examEye(e.id);
    const d = diagnosis({ encounterId: e.id, patientId: p.id });
    return {
      branches: b,
      rooms: r,
      profiles: doctor,
      user_roles: role,
      user_branches: membership,
      patients: p,
      appointments: a,
      encounters: e,
      exam_eye: x,
      diagnoses: d,
    } satisfies { [K in TableName]: NewRow<K> };
  }

  return { branch, room, profile, patient, appointment, encounter, examEye, diagnosis, clinic };
}

export type Fixtures = ReturnType<typeof createFixtures>;
