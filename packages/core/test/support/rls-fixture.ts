import { randomUUID } from "node:crypto";
import type postgres from "postgres";
import { TABLE_NAMES, type TableName } from "../../src/tables/index.js";
import { type Outcome, outcome } from "./clinic-logins.js";
import { type ClinicRows, clinicRows, insertClinic, insertRow } from "./ehr-fixtures.js";
import { rolledBack } from "./test-database.js";

/*
 * One fixture for sql/0004's policies, seeded identically (same ids) into a Supabase-shaped
 * database and a clinic server's, and the probe that runs every operation on every table as each
 * person and writes down what happened: the two tiers must write down the same.
 *
 * Branch A (`north`) and branch B (`south`) each hold a whole consultation. People:
 *   doctor_ab   the doctor of A's consultation, also working at B
 *   staff_b     the doctor of B's consultation, at B only
 *   reception_a reception at A
 *   admin_a     admin at A
 *   no_branch   a nurse listed at no branch
 * and a patient registered at B with an appointment at A (`visitor`).
 */

export const PEOPLE = ["reception_a", "doctor_ab", "admin_a", "staff_b", "no_branch"] as const;
export type Person = (typeof PEOPLE)[number];
/** Who runs a probe: a person, role `authenticated` with no one signed in, or no role at all. */
export type Actor = Person | "nobody" | "anonymous";
export const ACTORS: readonly Actor[] = [...PEOPLE, "nobody", "anonymous"];

type AnyRow = Record<string, unknown> & { id: string };

export interface RlsFixture {
  readonly north: ClinicRows;
  readonly south: ClinicRows;
  readonly userIds: Readonly<Record<Person, string>>;
  /** Every seeded row, by table and label. */
  readonly labelled: Readonly<Record<TableName, Readonly<Record<string, AnyRow>>>>;
  /** Rows the probe tries to insert, by table and label (rolled back). */
  readonly fresh: Readonly<Record<TableName, Readonly<Record<string, AnyRow>>>>;
}

function profile(id: string, name: string): AnyRow {
  return {
    id,
    full_name: name,
    email: `${name.toLowerCase().replace(/\W+/g, ".")}.${id.slice(0, 6)}@example.mx`,
  };
}

export function rlsFixture(): RlsFixture {
  const north = clinicRows();
  const south = clinicRows();
  const userIds: Record<Person, string> = {
    doctor_ab: north.profiles.id,
    staff_b: south.profiles.id,
    reception_a: randomUUID(),
    admin_a: randomUUID(),
    no_branch: randomUUID(),
  };
  const visitor = clinicRows();
  const visitorPatient = { ...visitor.patients, branch_id: south.branches.id } as AnyRow;
  const visitorAppointment = {
    ...visitor.appointments,
    branch_id: north.branches.id,
    room_id: north.rooms.id,
    patient_id: visitorPatient.id,
    doctor_id: north.profiles.id,
  } as AnyRow;
  const member = (user: string, branch: string): AnyRow => ({
    id: randomUUID(),
    user_id: user,
    branch_id: branch,
  });
  const role = (user: string, name: string): AnyRow => ({ id: randomUUID(), user_id: user, role: name });
  const byBranch = (table: TableName) => ({ A: north[table] as AnyRow, B: south[table] as AnyRow });

  const labelled: Record<TableName, Record<string, AnyRow>> = {
    branches: byBranch("branches"),
    rooms: byBranch("rooms"),
    profiles: {
      doctor_ab: north.profiles as AnyRow,
      staff_b: south.profiles as AnyRow,
      reception_a: profile(userIds.reception_a, "Recepción Roma"),
      admin_a: profile(userIds.admin_a, "Administración Roma"),
      no_branch: profile(userIds.no_branch, "Enfermería"),
    },
    user_roles: {
      doctor_ab: north.user_roles as AnyRow,
      staff_b: south.user_roles as AnyRow,
      reception_a: role(userIds.reception_a, "reception"),
      admin_a: role(userIds.admin_a, "admin"),
      no_branch: role(userIds.no_branch, "nurse"),
    },
    user_branches: {
      "doctor_ab@A": north.user_branches as AnyRow,
      "doctor_ab@B": member(userIds.doctor_ab, south.branches.id),
      "staff_b@B": south.user_branches as AnyRow,
      "reception_a@A": member(userIds.reception_a, north.branches.id),
      "admin_a@A": member(userIds.admin_a, north.branches.id),
    },
    patients: { ...byBranch("patients"), visitor: visitorPatient },
    appointments: { ...byBranch("appointments"), "visitor@A": visitorAppointment },
    encounters: byBranch("encounters"),
    exam_eye: byBranch("exam_eye"),
    diagnoses: byBranch("diagnoses"),
  };

  const next = { A: clinicRows(), B: clinicRows() };
  const at = (branch: "A" | "B") => (branch === "A" ? north : south);
  const inBranch = (build: (home: ClinicRows, row: ClinicRows) => AnyRow) => ({
    A: build(at("A"), next.A),
    B: build(at("B"), next.B),
  });
  const fresh: Record<TableName, Record<string, AnyRow>> = {
    branches: { new: next.A.branches as AnyRow },
    rooms: inBranch((home, row) => ({ ...row.rooms, branch_id: home.branches.id, name: "Consultorio 2" })),
    profiles: { new: profile(randomUUID(), "Dr. Nuevo") },
    user_roles: { "admin for reception_a": role(userIds.reception_a, "admin") },
    user_branches: { "no_branch@A": member(userIds.no_branch, north.branches.id) },
    patients: inBranch((home, row) => ({ ...row.patients, branch_id: home.branches.id })),
    appointments: inBranch((home, row) => ({
      ...row.appointments,
      branch_id: home.branches.id,
      room_id: home.rooms.id,
      patient_id: home.patients.id,
      doctor_id: home.profiles.id,
    })),
    encounters: inBranch((home, row) => ({
      ...row.encounters,
      branch_id: home.branches.id,
      patient_id: home.patients.id,
      appointment_id: home.appointments.id,
      doctor_id: home.profiles.id,
    })),
    exam_eye: inBranch((home, row) => ({ ...row.exam_eye, encounter_id: home.encounters.id, eye: "OS" })),
    diagnoses: inBranch((home, row) => ({
      ...row.diagnoses,
      encounter_id: home.encounters.id,
      patient_id: home.patients.id,
    })),
  };
  return { north, south, userIds, labelled, fresh };
}

/** Seeds the fixture as the database's owner or a superuser, parents first. */
export async function seedRlsFixture(sql: postgres.Sql, fixture: RlsFixture): Promise<void> {
  await insertClinic(sql, fixture.north);
  await insertClinic(sql, fixture.south);
  for (const table of TABLE_NAMES) {
    const seeded = new Set<string>([fixture.north[table].id, fixture.south[table].id]);
    for (const row of Object.values(fixture.labelled[table])) {
      if (!seeded.has(row.id)) await insertRow(sql, table, row);
    }
  }
}

/** A harmless change per table, allowed by its CHECKs, for the update probe. */
const CHANGE: Readonly<Record<TableName, Readonly<Record<string, unknown>>>> = {
  branches: { name: "Sucursal renombrada" },
  rooms: { name: "Consultorio 9" },
  profiles: { full_name: "Nombre cambiado" },
  user_roles: { role: "technician" },
  user_branches: { updated_at: "2025-01-01T00:00:00Z" },
  patients: { phone: "55 0000 0000" },
  appointments: { reason: "Cambio de motivo" },
  encounters: { chief_complaint: "Cambio de motivo" },
  exam_eye: { iop_mmhg: 18 },
  diagnoses: { description: "Descripción cambiada" },
};

/** Runs `work` in a transaction that is rolled back, as `actor`; the caller decides how. */
export type RunAs = (
  actor: Actor,
  work: (tx: postgres.TransactionSql) => Promise<unknown>,
) => Promise<Outcome<unknown>>;

/** `RunAs` over clients whose connection already is the actor (`client(actor)`), rolled back. */
export function runOn(
  client: (actor: Actor) => postgres.Sql,
  before?: (actor: Actor, tx: postgres.TransactionSql) => Promise<unknown>,
): RunAs {
  return async (actor, work) => {
    let result: Outcome<unknown> | undefined;
    await rolledBack(client(actor), async (tx) => {
      await before?.(actor, tx);
      result = await outcome(() => work(tx));
    });
    return result ?? { code: "none" };
  };
}

const shown = (result: Outcome<unknown>) => ("code" in result ? `refused ${result.code}` : String(result.ok));

/**
 * Every actor × table × operation, written down as `actor table operation target → outcome`:
 * `select` lists the labels of the rows the actor sees, `insert` each fresh row, `update` and
 * `delete` each seeded row (row count, or the SQLSTATE of a refusal).
 */
export async function probeMatrix(fixture: RlsFixture, runAs: RunAs): Promise<Record<string, string>> {
  const matrix: Record<string, string> = {};
  for (const actor of ACTORS) {
    for (const table of TABLE_NAMES) {
      const labels = new Map(Object.entries(fixture.labelled[table]).map(([label, row]) => [row.id, label]));
      const seen = await runAs(actor, async (tx) => {
        const rows = await tx<{ id: string }[]>`select id from ${tx(table)}`;
        return rows.map((row) => labels.get(row.id) ?? "unknown").sort();
      });
      matrix[`${actor} ${table} select`] =
        "code" in seen ? shown(seen) : (seen.ok as string[]).join(",") || "none";
      for (const [label, row] of Object.entries(fixture.fresh[table])) {
        matrix[`${actor} ${table} insert ${label}`] = shown(
          await runAs(actor, async (tx) => {
            await insertRow(tx, table, row);
            return "inserted";
          }),
        );
      }
      for (const [label, row] of Object.entries(fixture.labelled[table])) {
        const change = CHANGE[table] as Record<string, postgres.SerializableParameter>;
        matrix[`${actor} ${table} update ${label}`] = shown(
          await runAs(
            actor,
            async (tx) => (await tx`update ${tx(table)} set ${tx(change)} where id = ${row.id}`).count,
          ),
        );
        matrix[`${actor} ${table} delete ${label}`] = shown(
          await runAs(actor, async (tx) => (await tx`delete from ${tx(table)} where id = ${row.id}`).count),
        );
      }
    }
  }
  return matrix;
}
