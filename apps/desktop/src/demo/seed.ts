import { randomUUID } from "node:crypto";
import { type NewRow, SYNCED_TABLES, type TableName } from "@centrovision/core";
import type postgres from "postgres";
import { todayIn } from "../backend/day-range.js";

/** The demo clinic: two branches in Mexico City, their rooms and staff, patients, a week of appointments. */
export interface DemoClinic {
  readonly branches: readonly { id: string; name: string }[];
  /** The reception user (member of both branches, role `reception`). */
  readonly receptionistId: string;
  /** The first doctor (member of both branches, role `doctor`). */
  readonly doctorId: string;
  /** The clinic's administrator (member of both branches, role `admin`): reads the audit trail. */
  readonly adminId: string;
  readonly rows: { readonly [T in TableName]?: NewRow<T>[] };
}

const FIRST = [
  "María José",
  "José Luis",
  "Guadalupe",
  "Juan Carlos",
  "Ana Sofía",
  "Francisco",
  "Verónica",
  "Jesús",
  "Ximena",
  "Miguel Ángel",
  "Rosa María",
  "Alejandro",
  "Fernanda",
  "Ricardo",
  "Itzel",
  "Héctor",
];
const LAST = [
  "Hernández",
  "García",
  "Martínez",
  "López",
  "González",
  "Pérez",
  "Rodríguez",
  "Sánchez",
  "Ramírez",
  "Cruz",
  "Flores",
  "Gómez",
  "Morales",
  "Vázquez",
  "Jiménez",
  "Reyes",
  "Díaz",
  "Ortiz",
  "Núñez",
  "Peña",
];
const REASONS = [
  "Revisión de presión intraocular",
  "Control de glaucoma",
  "Valoración de catarata",
  "Graduación de lentes",
  "Ojo rojo y ardor",
  "Control postoperatorio de catarata",
  "Fondo de ojo (diabetes)",
  "Revisión de pterigión",
  "Visión borrosa de cerca",
  "Campimetría de control",
];
const TYPES = ["follow_up", "follow_up", "first_visit", "study", "post_op", "follow_up"] as const;

/** The members of staff who sign in to the demo (the demo gives them Supabase Auth accounts). */
export const SIGNING_STAFF = {
  receptionist: { name: "Paola Mendoza (Recepción)", email: "recepcion@centrovision.mx" },
  doctor: { name: "Dra. Mariana Robles Treviño", email: "mariana.robles@centrovision.mx" },
  admin: { name: "Lic. Andrés Villaseñor (Dirección)", email: "direccion@centrovision.mx" },
} as const;

/** A deterministic pick, so every demo run shows the same clinic. */
const pick = <T>(list: readonly T[], i: number): T => list[i % list.length] as T;

/** Today's date in Mexico City, YYYY-MM-DD. */
export const todayInMexicoCity = (now = new Date()): string => todayIn("America/Mexico_City", now);

function addDays(date: string, days: number): string {
  const d = new Date(`${date}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + days);
  return d.toISOString().slice(0, 10);
}

/**
 * `staffIds` gives the receptionist, the first doctor and the administrator the ids of their
 * Supabase Auth users, so `auth.uid()` is their profile's id, as on a real project.
 */
export function buildDemoClinic(
  today = todayInMexicoCity(),
  staffIds: { receptionist?: string; doctor?: string; admin?: string } = {},
): DemoClinic {
  const branches: NewRow<"branches">[] = [
    {
      id: randomUUID(),
      code: "CDMX-SUR",
      name: "CentroVision Sur",
      address: "Av. Insurgentes Sur 1234, Del Valle, CDMX",
      phone: "+52 55 5534 1200",
    },
    {
      id: randomUUID(),
      code: "CDMX-POL",
      name: "CentroVision Polanco",
      address: "Av. Presidente Masaryk 201, Polanco, CDMX",
      phone: "+52 55 5280 4400",
    },
  ];
  const doctors: NewRow<"profiles">[] = [
    {
      id: staffIds.doctor ?? randomUUID(),
      full_name: SIGNING_STAFF.doctor.name,
      email: SIGNING_STAFF.doctor.email,
      professional_license: "7845123",
    },
    {
      id: randomUUID(),
      full_name: "Dr. Emilio Cárdenas Uribe",
      email: "emilio.cardenas@centrovision.mx",
      professional_license: "6532190",
    },
    {
      id: randomUUID(),
      full_name: "Dra. Lucía Fernández Ibarra",
      email: "lucia.fernandez@centrovision.mx",
      professional_license: "8120456",
    },
  ];
  const receptionist: NewRow<"profiles"> = {
    id: staffIds.receptionist ?? randomUUID(),
    full_name: SIGNING_STAFF.receptionist.name,
    email: SIGNING_STAFF.receptionist.email,
    professional_license: null,
  };
  const admin: NewRow<"profiles"> = {
    id: staffIds.admin ?? randomUUID(),
    full_name: SIGNING_STAFF.admin.name,
    email: SIGNING_STAFF.admin.email,
    professional_license: null,
  };
  const rooms: NewRow<"rooms">[] = branches.flatMap((b) => [
    { id: randomUUID(), branch_id: b.id, name: "Consultorio 1", kind: "consultation" as const },
    { id: randomUUID(), branch_id: b.id, name: "Consultorio 2", kind: "consultation" as const },
    { id: randomUUID(), branch_id: b.id, name: "Optometría", kind: "optometry" as const },
    { id: randomUUID(), branch_id: b.id, name: "Estudios especiales", kind: "diagnostics" as const },
  ]);
  const staff = [...doctors, receptionist, admin];
  const user_roles: NewRow<"user_roles">[] = [
    ...doctors.map((d) => ({ id: randomUUID(), user_id: d.id, role: "doctor" as const })),
    { id: randomUUID(), user_id: receptionist.id, role: "reception" },
    { id: randomUUID(), user_id: admin.id, role: "admin" },
  ];
  const user_branches: NewRow<"user_branches">[] = staff.flatMap((p) =>
    branches.map((b) => ({ id: randomUUID(), user_id: p.id, branch_id: b.id })),
  );
  const patients: NewRow<"patients">[] = Array.from({ length: 48 }, (_, i) => ({
    id: randomUUID(),
    branch_id: pick(branches, i).id as string,
    first_name: pick(FIRST, i * 7),
    last_name: pick(LAST, i * 3),
    second_last_name: pick(LAST, i * 5 + 1),
    document_id: `DEMO${String(1000 + i)}`,
    birth_date: `${1940 + ((i * 7) % 60)}-${String((i % 12) + 1).padStart(2, "0")}-${String((i % 27) + 1).padStart(2, "0")}`,
    sex: i % 2 === 0 ? ("female" as const) : ("male" as const),
    phone: `+52 55 ${String(5100 + i)} ${String(2000 + i * 13).slice(0, 4)}`,
  }));
  const appointments: NewRow<"appointments">[] = [];
  for (let day = 0; day < 7; day += 1) {
    const date = addDays(today, day);
    for (const [b, branch] of branches.entries()) {
      for (let slot = 0; slot < 8; slot += 1) {
        const n = day * 16 + b * 8 + slot;
        const hour = 9 + slot;
        const patient = patients.filter((p) => p.branch_id === branch.id)[n % 24] as NewRow<"patients">;
        appointments.push({
          id: randomUUID(),
          branch_id: branch.id,
          room_id: pick(
            rooms.filter((r) => r.branch_id === branch.id),
            slot,
          ).id as string,
          patient_id: patient.id,
          doctor_id: pick(doctors, slot + b).id as string,
          starts_at: `${date}T${String(hour).padStart(2, "0")}:00:00-06:00`,
          ends_at: `${date}T${String(hour).padStart(2, "0")}:30:00-06:00`,
          status: day === 0 && slot < 2 ? "completed" : slot % 3 === 0 ? "confirmed" : "scheduled",
          reason: pick(REASONS, n),
          type: pick(TYPES, n),
        });
      }
    }
  }
  return {
    branches: branches.map((b) => ({ id: b.id, name: b.name })),
    receptionistId: receptionist.id,
    doctorId: doctors[0]?.id as string,
    adminId: admin.id,
    rows: { branches, rooms, profiles: staff, user_roles, user_branches, patients, appointments },
  };
}

/** Writes the clinic in one transaction, parents first (as the cloud's own tools would). */
export async function seedDemoClinic(sql: postgres.Sql, clinic: DemoClinic): Promise<void> {
  await sql.begin(async (tx) => {
    for (const table of SYNCED_TABLES) {
      const rows = clinic.rows[table] as Record<string, postgres.SerializableParameter>[] | undefined;
      if (rows !== undefined && rows.length > 0) await tx`insert into ${tx(table)} ${tx(rows)}`;
    }
  });
}
