import { randomUUID } from "node:crypto";
import { clinicSession } from "@centrovision/testkit";
import type postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TABLE_NAMES } from "../src/tables/index.js";
import { createLogin, type Login } from "./support/clinic-logins.js";
import { insertRow } from "./support/ehr-fixtures.js";
import {
  type Actor,
  PEOPLE,
  probeMatrix,
  type RlsFixture,
  type RunAs,
  rlsFixture,
  runOn,
  seedRlsFixture,
} from "./support/rls-fixture.js";
import { createTestDatabase, type TestDatabase } from "./support/test-database.js";

/*
 * sql/0004_row_level_security.sql: one set of branch-scoped policies on both tiers. On the
 * Supabase-shaped database the person comes from the request's JWT claims (verified by the API
 * gateway); on the clinic server from a clinic session that PostgreSQL verifies itself (0003),
 * presented by a real PC login. The same fixture, probed the same way on both, must give the
 * same answers — every actor, every table, every operation.
 */

const fixture: RlsFixture = rlsFixture();
let cloud: TestDatabase;
let clinic: TestDatabase;
let pc: Login;
let cloudMatrix: Record<string, string>;
let clinicMatrix: Record<string, string>;
let onCloud: RunAs;
let onClinic: RunAs;

beforeAll(async () => {
  [cloud, clinic] = await Promise.all([
    createTestDatabase("cv_rls_cloud", { supabase: true }),
    createTestDatabase("cv_rls_clinic"),
  ]);
  await Promise.all([seedRlsFixture(cloud.sql, fixture), seedRlsFixture(clinic.sql, fixture)]);
  pc = await createLogin(clinic, "centrovision_app");

  // The cloud: the superuser takes the API role, and the claims are what the gateway would set.
  onCloud = runOn(
    () => cloud.sql,
    async (actor, tx) => {
      await tx.unsafe(`set local role ${actor === "anonymous" ? "anon" : "authenticated"}`);
      if (actor !== "anonymous" && actor !== "nobody") {
        const claims = { sub: fixture.userIds[actor], role: "authenticated", aud: "authenticated" };
        await tx`select set_config('request.jwt.claims', ${JSON.stringify(claims)}, true)`;
      }
    },
  );
  // The clinic server: a PC login, alone, as `authenticated` without a session, or with one.
  const clients = new Map<Actor, postgres.Sql>();
  clients.set("anonymous", pc.connect({ as: "login" }));
  clients.set("nobody", pc.connect({ as: "nobody" }));
  for (const person of PEOPLE) {
    const token = await clinicSession(clinic.url, { userId: fixture.userIds[person] });
    clients.set(person, pc.connect({ as: "person", token }));
  }
  onClinic = runOn((actor) => clients.get(actor) as postgres.Sql);

  [cloudMatrix, clinicMatrix] = await Promise.all([
    probeMatrix(fixture, onCloud),
    probeMatrix(fixture, onClinic),
  ]);
}, 240_000);

afterAll(async () => {
  await pc?.drop();
  await Promise.all([cloud?.drop(), clinic?.drop()]);
});

const at = (matrix: Record<string, string>, actor: Actor, rest: string) => matrix[`${actor} ${rest}`];

describe("the two tiers agree", () => {
  it("install the same policies and helpers", async () => {
    const policies = (db: TestDatabase) => db.sql`
      select tablename, policyname, cmd, roles::text[] as roles, qual, with_check from pg_policies
      where schemaname = 'public' order by tablename, policyname`;
    const [onCloud, onClinic] = await Promise.all([policies(cloud), policies(clinic)]);
    expect(onClinic).toEqual(onCloud);
    expect(onClinic.length).toBeGreaterThan(0);
    const protectedTables = (db: TestDatabase) => db.sql<{ count: number }[]>`
      select count(*)::int as count from pg_class
      where relnamespace = 'public'::regnamespace and relname = any(${TABLE_NAMES as unknown as string[]}) and relrowsecurity`;
    for (const db of [cloud, clinic]) expect((await protectedTables(db))[0]?.count).toBe(TABLE_NAMES.length);
  });

  it("give every actor the same outcome for every table and operation", () => {
    // 7 actors × (10 tables read + 16 rows inserted + 31 rows updated and deleted).
    expect(Object.keys(clinicMatrix)).toHaveLength(7 * (10 + 16 + 2 * 31));
    expect(clinicMatrix).toEqual(cloudMatrix);
  });
});

describe.each([
  ["cloud (Supabase-shaped)", () => cloudMatrix],
  ["clinic server (a PC login with a verified session)", () => clinicMatrix],
])("on the %s", (_tier, matrixOf) => {
  const outcome = (actor: Actor, rest: string) => at(matrixOf(), actor, rest);

  it("shows patients registered at the person's branches or booked into them, none of another branch", () => {
    expect(outcome("reception_a", "patients select")).toBe("A,visitor");
    expect(outcome("staff_b", "patients select")).toBe("B,visitor");
    expect(outcome("doctor_ab", "patients select")).toBe("A,B,visitor");
    expect(outcome("no_branch", "patients select")).toBe("none");
    expect(outcome("reception_a", "appointments select")).toBe("A,visitor@A");
    expect(outcome("staff_b", "appointments select")).toBe("B");
    for (const table of ["encounters", "exam_eye", "diagnoses"]) {
      expect(outcome("reception_a", `${table} select`), table).toBe("A");
      expect(outcome("staff_b", `${table} select`), table).toBe("B");
    }
  });

  it("shows nothing without a verified person, and refuses a caller without the role", () => {
    for (const table of TABLE_NAMES) {
      expect(outcome("nobody", `${table} select`), table).toBe("none");
      expect(outcome("anonymous", `${table} select`), table).toBe("refused 42501");
    }
  });

  it("lets members write their branch's clinical rows and nothing outside it", () => {
    expect(outcome("reception_a", "appointments insert A")).toBe("inserted");
    expect(outcome("reception_a", "appointments insert B")).toBe("refused 42501");
    expect(outcome("reception_a", "exam_eye insert B")).toBe("refused 42501");
    expect(outcome("doctor_ab", "exam_eye insert B")).toBe("inserted");
    expect(outcome("reception_a", "patients update B")).toBe("0");
    expect(outcome("reception_a", "patients update visitor")).toBe("1");
    expect(outcome("reception_a", "encounters delete B")).toBe("0");
    expect(outcome("staff_b", "exam_eye delete B")).toBe("1");
  });

  it("leaves branch configuration to its admins, and users, roles and memberships to service_role", () => {
    expect(outcome("reception_a", "rooms update A")).toBe("0");
    expect(outcome("admin_a", "rooms update A")).toBe("1");
    expect(outcome("admin_a", "rooms update B")).toBe("0");
    expect(outcome("admin_a", "branches insert new")).toBe("refused 42501");
    for (const actor of [...PEOPLE, "nobody"] as const) {
      expect(outcome(actor, "user_roles insert admin for reception_a"), actor).toBe("refused 42501");
      expect(outcome(actor, "user_branches insert no_branch@A"), actor).toBe("refused 42501");
    }
    for (const person of PEOPLE) expect(outcome(person, `user_roles update ${person}`), person).toBe("0");
  });

  it("shows colleagues' profiles and lets each person edit only their own", () => {
    expect(outcome("reception_a", "profiles select")).toBe("admin_a,doctor_ab,reception_a");
    expect(outcome("no_branch", "profiles select")).toBe("no_branch");
    for (const person of PEOPLE) {
      for (const other of PEOPLE) {
        expect(outcome(person, `profiles update ${other}`), `${person} → ${other}`).toBe(
          person === other ? "1" : "0",
        );
      }
    }
  });
});

describe.each([
  ["cloud (Supabase-shaped)", () => onCloud],
  ["clinic server (a PC login with a verified session)", () => onClinic],
])("links and moves on the %s", (_tier, runAsOf) => {
  const { north, south, labelled, fresh } = fixture;
  const insert = (actor: Actor, table: Parameters<typeof insertRow>[1], row: Record<string, unknown>) =>
    runAsOf()(actor, async (tx) => {
      await insertRow(tx, table, row);
      return "inserted";
    });
  const appointmentA = fresh.appointments.A as Record<string, unknown>;
  const encounterA = fresh.encounters.A as Record<string, unknown>;
  const visitor = labelled.patients.visitor?.id as string;

  it("links a row only to a patient its writer already sees, and refuses another branch's as it refuses none", async () => {
    for (const patient of [south.patients.id, randomUUID()]) {
      expect(await insert("reception_a", "appointments", { ...appointmentA, patient_id: patient })).toEqual({
        code: "42501",
      });
      expect(
        await insert("reception_a", "encounters", {
          ...encounterA,
          patient_id: patient,
          appointment_id: null,
        }),
      ).toEqual({ code: "42501" });
    }
    // A patient of another branch already booked here is seen here: booking them again works.
    expect(await insert("reception_a", "appointments", { ...appointmentA, patient_id: visitor })).toEqual({
      ok: "inserted",
    });
    expect(await insert("reception_a", "appointments", { ...appointmentA })).toEqual({ ok: "inserted" });
  });

  it("refuses a room of another branch, an appointment of another patient and a diagnosis of another patient's encounter", async () => {
    expect(await insert("doctor_ab", "appointments", { ...appointmentA, room_id: south.rooms.id })).toEqual({
      code: "42501",
    });
    expect(
      await insert("doctor_ab", "encounters", {
        ...encounterA,
        appointment_id: labelled.appointments["visitor@A"]?.id,
      }),
    ).toEqual({ code: "42501" });
    expect(
      await insert("doctor_ab", "diagnoses", { ...fresh.diagnoses.A, patient_id: south.patients.id }),
    ).toEqual({ code: "42501" });
    expect(await insert("doctor_ab", "diagnoses", { ...fresh.diagnoses.A })).toEqual({ ok: "inserted" });
  });

  it("moves a patient's home branch only for a user of that branch", async () => {
    const move = (actor: Actor, to: string) =>
      runAsOf()(
        actor,
        async (tx) => (await tx`update patients set branch_id = ${to} where id = ${visitor}`).count,
      );
    // reception_a sees the visitor (booked at A) but works only at A: the visitor's home is B.
    expect(await move("reception_a", north.branches.id)).toEqual({ code: "42501" });
    // staff_b works at B, but would move the patient out of their own sight (the policies refuse).
    expect(await move("staff_b", north.branches.id)).toEqual({ code: "42501" });
    expect(await move("doctor_ab", north.branches.id)).toEqual({ ok: 1 });
    // A change that keeps the home branch is no move.
    expect(await move("reception_a", south.branches.id)).toEqual({ ok: 1 });
  });

  it("registers a patient whose document belongs to another branch's patient (nothing told), not a twin of its own branch", async () => {
    const patientA = fresh.patients.A as Record<string, unknown>;
    expect(
      await insert("reception_a", "patients", { ...patientA, document_id: south.patients.document_id }),
    ).toEqual({ ok: "inserted" });
    expect(
      await insert("reception_a", "patients", { ...patientA, document_id: north.patients.document_id }),
    ).toEqual({ code: "23505" });
  });

  it("answers cv_patient_visible as the patients policy does, for every person and patient", async () => {
    const ids = [...Object.values(labelled.patients).map((row) => row.id), randomUUID()];
    for (const person of PEOPLE) {
      const answer = await runAsOf()(person, async (tx) => {
        const seen = new Set((await tx<{ id: string }[]>`select id from patients`).map((row) => row.id));
        const said = await tx<{ id: string; visible: boolean }[]>`
          select id, public.cv_patient_visible(id) as visible from unnest(${ids}::uuid[]) id`;
        return said.filter((row) => row.visible !== seen.has(row.id)).map((row) => row.id);
      });
      expect(answer, person).toEqual({ ok: [] });
    }
  });
});

describe("where only one tier has it", () => {
  it("the cloud's service_role sees every row (it bypasses row-level security); anon holds no privilege", async () => {
    const all = await cloud.sql.begin(async (tx) => {
      await tx`set local role service_role`;
      return (await tx`select count(*)::int as count from patients`)[0]?.count;
    });
    expect(all).toBe(3);
    const [anon] = await cloud.sql<{ count: number }[]>`
      select count(*)::int as count from unnest(${TABLE_NAMES as unknown as string[]}::text[]) t(name),
        unnest(array['SELECT','INSERT','UPDATE','DELETE','TRUNCATE','REFERENCES','TRIGGER']) p(privilege)
      where has_table_privilege('anon', 'public.' || t.name, p.privilege)`;
    expect(anon?.count).toBe(0);
  });

  it("the helpers are SECURITY DEFINER with a fixed search_path, out of anon's and a PC login's reach", async () => {
    for (const db of [cloud, clinic]) {
      const helpers = await db.sql`
        select proname, prosecdef, proconfig, has_function_privilege(${pc.name}, oid, 'EXECUTE') as pc,
          to_regrole('anon') is not null and has_function_privilege('anon', oid, 'EXECUTE') as anon
        from pg_proc where pronamespace = 'public'::regnamespace
          and proname in ('cv_user_branch_ids', 'cv_colleague_ids', 'cv_user_is_admin', 'cv_patient_visible')
        order by proname`;
      expect(helpers).toHaveLength(4);
      for (const helper of helpers) {
        expect(helper).toMatchObject({
          prosecdef: true,
          proconfig: ['search_path=""'],
          pc: false,
          anon: false,
        });
      }
    }
  });

  it("the cloud keeps Supabase's auth.uid(): 0003 adds no clinic key, no cv_auth.claims() there", async () => {
    const [state] = await cloud.sql`
      select to_regclass('cv_auth.signing_key') as key, to_regprocedure('cv_auth.claims()') as claims,
        pg_get_functiondef('auth.uid()'::regprocedure) like '%request.jwt.claim%' as supabase_uid`;
    expect(state).toEqual({ key: null, claims: null, supabase_uid: true });
  });
});
