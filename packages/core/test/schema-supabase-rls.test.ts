import { randomUUID } from "node:crypto";
import type postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TABLE_NAMES, type TableName } from "../src/tables/index.js";
import { type ClinicRows, clinicRows, insertClinic, insertRow } from "./support/ehr-fixtures.js";
import { createTestDatabase, rolledBack, type TestDatabase } from "./support/test-database.js";

/* sql/0004_supabase_rls.sql: branch-scoped row-level security, only where Supabase's shape exists. */

describe("on a plain PostgreSQL (the clinic server)", () => {
  let plain: TestDatabase;
  beforeAll(async () => {
    plain = await createTestDatabase("cv_plain");
  });
  afterAll(async () => {
    await plain?.drop();
  });

  it("does nothing: no row-level security, no policies, no helpers", async () => {
    const [state] = await plain.sql`
      select
        (select count(*)::int from pg_class where relnamespace = 'public'::regnamespace and relrowsecurity) as rls,
        (select count(*)::int from pg_policies) as policies,
        (select count(*)::int from pg_proc where proname like 'cv_user_%' or proname = 'cv_colleague_ids') as helpers`;
    expect(state).toEqual({ rls: 0, policies: 0, helpers: 0 });
  });
});

describe("on a Supabase-shaped database", () => {
  let db: TestDatabase;
  let north: ClinicRows;
  let south: ClinicRows;
  /** A south patient with an appointment at the north branch. */
  let visitor: ClinicRows;

  beforeAll(async () => {
    db = await createTestDatabase("cv_supabase", { supabase: true });
    north = clinicRows();
    south = clinicRows();
    await insertClinic(db.sql, north);
    await insertClinic(db.sql, south);
    visitor = clinicRows();
    await insertRow(db.sql, "patients", { ...visitor.patients, branch_id: south.branches.id });
    await insertRow(db.sql, "appointments", {
      ...visitor.appointments,
      branch_id: north.branches.id,
      room_id: north.rooms.id,
      doctor_id: north.profiles.id,
    });
  });
  afterAll(async () => {
    await db?.drop();
  });

  const doctor = () => north.profiles.id;

  /**
   * Runs `work` as `user` under `role`, after `setup` ran as superuser, all rolled back.
   * Returns the work's result or its SQLSTATE.
   */
  async function as<T>(
    user: string | null,
    work: (tx: postgres.TransactionSql) => Promise<T>,
    role = "authenticated",
    setup?: (tx: postgres.TransactionSql) => Promise<unknown>,
  ) {
    let outcome: { ok: T } | { code: string } | undefined;
    await rolledBack(db.sql, async (tx) => {
      await setup?.(tx);
      await tx.unsafe(`set local role ${role}`);
      await tx`select set_config('request.jwt.claim.sub', ${user ?? ""}, true)`;
      try {
        outcome = { ok: await work(tx) };
      } catch (error) {
        outcome = { code: (error as postgres.PostgresError).code };
      }
    });
    return outcome;
  }
  const ids = (table: TableName) => async (tx: postgres.TransactionSql) =>
    (await tx<{ id: string }[]>`select id from ${tx(table)} order by id`).map((row) => row.id);

  it("enables row-level security on every EHR table; anon holds no privilege at all", async () => {
    const tables = await db.sql<{ relname: string; relrowsecurity: boolean }[]>`
      select relname, relrowsecurity from pg_class
      where relnamespace = 'public'::regnamespace and relname = any(${TABLE_NAMES as unknown as string[]})`;
    expect(tables.filter((t) => t.relrowsecurity)).toHaveLength(TABLE_NAMES.length);
    const [anon] = await db.sql<{ count: number }[]>`
      select count(*)::int as count from unnest(${TABLE_NAMES as unknown as string[]}::text[]) t(name),
        unnest(array['SELECT','INSERT','UPDATE','DELETE','TRUNCATE','REFERENCES','TRIGGER']) p(privilege)
      where has_table_privilege('anon', 'public.' || t.name, p.privilege)`;
    expect(anon?.count).toBe(0);
    expect(await as(null, ids("patients"), "anon")).toEqual({ code: "42501" });
  });

  it("shows a user the rows of their branches, children through their encounter", async () => {
    for (const table of ["branches", "rooms", "encounters", "exam_eye", "diagnoses"] as const) {
      expect(await as(doctor(), ids(table)), table).toEqual({ ok: [north[table].id] });
    }
    expect(await as(doctor(), ids("appointments"))).toEqual({
      ok: [north.appointments.id, visitor.appointments.id].sort(),
    });
  });

  it("shows patients registered at the branch or booked into it", async () => {
    expect(await as(doctor(), ids("patients"))).toEqual({
      ok: [north.patients.id, visitor.patients.id].sort(),
    });
    expect(await as(south.profiles.id, ids("patients"))).toEqual({
      ok: [south.patients.id, visitor.patients.id].sort(),
    });
    expect(await as(randomUUID(), ids("patients"))).toEqual({ ok: [] });
  });

  it("shows colleagues' profiles, roles and memberships, read only", async () => {
    expect(await as(doctor(), ids("profiles"))).toEqual({ ok: [north.profiles.id] });
    expect(await as(doctor(), ids("user_roles"))).toEqual({ ok: [north.user_roles.id] });
    expect(await as(doctor(), ids("user_branches"))).toEqual({ ok: [north.user_branches.id] });
    const grantSelf = (tx: postgres.TransactionSql) =>
      insertRow(tx, "user_roles", { id: randomUUID(), user_id: doctor(), role: "admin" });
    expect(await as(doctor(), grantSelf)).toEqual({ code: "42501" });
    const rename = (profile: string) => async (tx: postgres.TransactionSql) =>
      (await tx`update profiles set full_name = 'Dra. L. Hernández' where id = ${profile}`).count;
    expect(await as(doctor(), rename(doctor()))).toEqual({ ok: 1 });
    expect(await as(doctor(), rename(south.profiles.id))).toEqual({ ok: 0 });
  });

  it("lets members write their branch's clinical rows and nothing outside it", async () => {
    const fresh = clinicRows();
    const book = (branch: ClinicRows) => (tx: postgres.TransactionSql) =>
      insertRow(tx, "appointments", {
        ...fresh.appointments,
        branch_id: branch.branches.id,
        room_id: branch.rooms.id,
        patient_id: branch.patients.id,
        doctor_id: branch.profiles.id,
      });
    expect(await as(doctor(), book(north))).toEqual({ ok: undefined });
    expect(await as(doctor(), book(south))).toEqual({ code: "42501" });

    const setIop = (exam: string) => async (tx: postgres.TransactionSql) =>
      (await tx`update exam_eye set iop_mmhg = 18 where id = ${exam}`).count;
    expect(await as(doctor(), setIop(north.exam_eye.id))).toEqual({ ok: 1 });
    expect(await as(doctor(), setIop(south.exam_eye.id))).toEqual({ ok: 0 });
    const examSouth = (tx: postgres.TransactionSql) =>
      insertRow(tx, "exam_eye", { ...fresh.exam_eye, encounter_id: south.encounters.id, eye: "OS" });
    expect(await as(doctor(), examSouth)).toEqual({ code: "42501" });
  });

  it("leaves branch configuration to admins", async () => {
    const rename = async (tx: postgres.TransactionSql) =>
      (await tx`update rooms set name = 'Consultorio 9' where id = ${north.rooms.id}`).count;
    expect(await as(doctor(), rename)).toEqual({ ok: 0 });
    const promoted = (tx: postgres.TransactionSql) => tx`
      insert into user_roles (id, user_id, role) values (${randomUUID()}, ${doctor()}, 'admin')`;
    expect(await as(doctor(), rename, "authenticated", promoted)).toEqual({ ok: 1 });
  });

  it("lets service_role see everything (it bypasses row-level security)", async () => {
    const all = await as(null, ids("patients"), "service_role");
    expect(all).toEqual({ ok: [north.patients.id, south.patients.id, visitor.patients.id].sort() });
  });

  it("keeps its helpers SECURITY DEFINER with a fixed search_path, away from anon", async () => {
    const helpers = await db.sql`
      select proname, prosecdef, proconfig, has_function_privilege('anon', oid, 'EXECUTE') as anon
      from pg_proc where pronamespace = 'public'::regnamespace
        and proname in ('cv_user_branch_ids', 'cv_colleague_ids', 'cv_user_is_admin')
      order by proname`;
    expect(helpers).toHaveLength(3);
    for (const helper of helpers) {
      expect(helper).toMatchObject({ prosecdef: true, proconfig: ['search_path=""'], anon: false });
    }
  });
});
