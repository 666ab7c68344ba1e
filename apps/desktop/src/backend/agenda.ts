import type { FailoverRouter, Row } from "@centrovision/core";
import { dayRange } from "./day-range.js";

/**
 * An appointment as the agenda shows it: the row, the patient's name and what tells namesakes
 * apart (phone, birth date), the doctor's and the room's names. A row this mode cannot read
 * (a patient outside the offline copy, a room closed since) gives `null` (`"—"` for the name).
 */
export type AgendaItem = Row<"appointments"> & {
  patient_name: string;
  patient_phone: string | null;
  patient_birth_date: string | null;
  doctor_name: string | null;
  room_name: string | null;
};

/** Who and where a branch books: its active doctors and rooms, by name. */
export interface BranchStaff {
  doctors: { id: string; full_name: string }[];
  rooms: { id: string; name: string; kind: string }[];
}

export const fullName = (p: Row<"patients">) =>
  [p.first_name, p.last_name, p.second_last_name].filter(Boolean).join(" ");

const byName = new Intl.Collator("es", { sensitivity: "base" });

const distinct = (values: readonly (string | null)[]) => [
  ...new Set(values.filter((v): v is string => v !== null)),
];

/** The branch's day in its time zone, by time. */
export async function agendaOf(
  router: FailoverRouter,
  branch: Row<"branches">,
  date: string,
): Promise<AgendaItem[]> {
  const appointments = await router.table("appointments").list({
    where: { branch_id: branch.id, starts_at: dayRange(date, branch.timezone) },
    orderBy: [{ column: "starts_at" }],
  });
  return describeAppointments(router, appointments);
}

/** Appointments as the agenda shows them: one list query per related table (`id in`). */
export async function describeAppointments(
  router: FailoverRouter,
  appointments: readonly Row<"appointments">[],
): Promise<AgendaItem[]> {
  const patientIds = distinct(appointments.map((a) => a.patient_id));
  const doctorIds = distinct(appointments.map((a) => a.doctor_id));
  const roomIds = distinct(appointments.map((a) => a.room_id));
  const [patients, doctors, rooms] = await Promise.all([
    patientIds.length === 0 ? [] : router.table("patients").list({ where: { id: { in: patientIds } } }),
    doctorIds.length === 0 ? [] : router.table("profiles").list({ where: { id: { in: doctorIds } } }),
    roomIds.length === 0 ? [] : router.table("rooms").list({ where: { id: { in: roomIds } } }),
  ]);
  const patientOf = new Map(patients.map((p) => [p.id, p]));
  const doctorName = new Map(doctors.map((d) => [d.id, d.full_name]));
  const roomName = new Map(rooms.map((r) => [r.id, r.name]));
  return appointments.map((a): AgendaItem => {
    const patient = patientOf.get(a.patient_id);
    return {
      ...a,
      patient_name: patient === undefined ? "—" : fullName(patient),
      patient_phone: patient?.phone ?? null,
      patient_birth_date: patient?.birth_date ?? null,
      doctor_name: a.doctor_id === null ? null : (doctorName.get(a.doctor_id) ?? null),
      room_name: a.room_id === null ? null : (roomName.get(a.room_id) ?? null),
    };
  });
}

/** Doctors: active people linked to the branch holding the `doctor` role. Rooms: its active rooms. */
export async function staffOf(router: FailoverRouter, branchId: string): Promise<BranchStaff> {
  const [members, rooms] = await Promise.all([
    router.table("user_branches").list({ where: { branch_id: branchId } }),
    router.table("rooms").list({ where: { branch_id: branchId, active: true } }),
  ]);
  const memberIds = distinct(members.map((m) => m.user_id));
  const roles =
    memberIds.length === 0
      ? []
      : await router.table("user_roles").list({ where: { user_id: { in: memberIds }, role: "doctor" } });
  const doctorIds = distinct(roles.map((r) => r.user_id));
  const profiles =
    doctorIds.length === 0
      ? []
      : await router.table("profiles").list({ where: { id: { in: doctorIds }, active: true } });
  return {
    doctors: profiles
      .map((p) => ({ id: p.id, full_name: p.full_name }))
      .sort((a, b) => byName.compare(a.full_name, b.full_name)),
    rooms: rooms
      .map((r) => ({ id: r.id, name: r.name, kind: r.kind }))
      .sort((a, b) => byName.compare(a.name, b.name)),
  };
}
