import { clinicSession, readMigrations } from "@centrovision/testkit";
import type postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TABLE_NAMES } from "../src/tables/index.js";
import { createLogin, type Login, outcome } from "./support/clinic-logins.js";
import { clinicRows, insertClinic, insertRow } from "./support/ehr-fixtures.js";
import { createTestDatabase, rolledBack, type TestDatabase } from "./support/test-database.js";

/*
 * sql/0003_roles.sql on the clinic server: group roles without powers, a PC login that holds no
 * table by itself and works only as a verified person (role `authenticated` + clinic session),
 * and a sync role whose work goes through its functions.
 */

const ROW_PRIVILEGES = ["DELETE", "INSERT", "SELECT", "UPDATE"];

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase("cv_roles");
});
afterAll(async () => {
  await db?.drop();
});

/** The SQLSTATE `statement` fails with when run as `role`, or undefined if it succeeds (rolled back). */
async function failureAs(role: string, statement: (tx: postgres.TransactionSql) => Promise<unknown>) {
  let code: string | undefined;
  await rolledBack(db.sql, async (tx) => {
    await tx.unsafe(`set local role ${role}`);
    const result = await outcome(() => statement(tx));
    code = "code" in result ? result.code : undefined;
  });
  return code;
}

/** Table privileges `role` holds itself (not through PUBLIC), per table in public and cv_auth. */
async function tableGrants(role: string) {
  const grants = await db.sql<{ table_name: string; privileges: string[] }[]>`
    select table_schema || '.' || table_name as table_name,
      array_agg(privilege_type::text order by privilege_type) as privileges
    from information_schema.role_table_grants
    where grantee = ${role} and table_schema in ('public', 'cv_auth')
    group by 1`;
  return Object.fromEntries(grants.map((g) => [g.table_name, g.privileges]));
}

describe.each(["centrovision_app", "centrovision_sync", "authenticated"])("%s", (role) => {
  it("is a group role without special powers", async () => {
    const [found] = await db.sql`
      select rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls
      from pg_roles where rolname = ${role}`;
    expect(found).toEqual({
      rolcanlogin: false,
      rolsuper: false,
      rolcreatedb: false,
      rolcreaterole: false,
      rolreplication: false,
      rolbypassrls: false,
    });
  });

  it("may use schema public but not create objects in it", async () => {
    const [privileges] = await db.sql`
      select has_schema_privilege(${role}, 'public', 'USAGE') as usage,
             has_schema_privilege(${role}, 'public', 'CREATE') as create`;
    expect(privileges).toEqual({ usage: true, create: false });
  });

  it.each([
    ["truncate a table", "truncate branches cascade"],
    ["alter a table", "alter table branches add column x int"],
    ["create a table", "create table public.x (id int)"],
    ["drop a table", "drop table diagnoses"],
    ["read the migration log", "select * from cv_meta.schema_migrations"],
    ["read the clinic's signing key", "select * from cv_auth.signing_key"],
  ])("cannot %s", async (_what, statement) => {
    expect(await failureAs(role, (tx) => tx.unsafe(statement))).toBe("42501");
  });
});

describe("centrovision_app (a clinic PC's login)", () => {
  it("holds no table at all, and does not inherit `authenticated`: it must name the role", async () => {
    expect(await tableGrants("centrovision_app")).toEqual({});
    const [membership] = await db.sql`
      select r.rolinherit as inherit, pg_has_role('centrovision_app', 'authenticated', 'SET') as can_set,
        pg_has_role('centrovision_app', 'authenticated', 'USAGE') as holds_its_grants
      from pg_roles r where r.rolname = 'centrovision_app'`;
    expect(membership).toEqual({ inherit: false, can_set: true, holds_its_grants: false });
  });

  it("reads and writes no EHR row by itself", async () => {
    for (const table of TABLE_NAMES) {
      expect(await failureAs("centrovision_app", (tx) => tx`select id from ${tx(table)}`), table).toBe(
        "42501",
      );
    }
    expect(
      await failureAs("centrovision_app", (tx) => insertRow(tx, "branches", clinicRows().branches)),
    ).toBe("42501");
  });
});

describe("authenticated (the person a PC works as)", () => {
  it("holds exactly SELECT, INSERT, UPDATE and DELETE on the EHR tables, each under row-level security", async () => {
    expect(await tableGrants("authenticated")).toEqual(
      Object.fromEntries(TABLE_NAMES.map((table) => [`public.${table}`, ROW_PRIVILEGES])),
    );
    const [unprotected] = await db.sql<{ count: number }[]>`
      select count(*)::int as count from pg_class
      where relnamespace = 'public'::regnamespace and relkind = 'r' and not relrowsecurity
        and has_table_privilege('authenticated', oid, 'SELECT')`;
    expect(unprotected?.count).toBe(0);
  });

  it("writes its branch's rows through the row-version trigger, with a verified session on a PC login", async () => {
    const clinic = clinicRows();
    await insertClinic(db.sql, clinic);
    const pc: Login = await createLogin(db, "centrovision_app");
    try {
      const token = await clinicSession(db.url, { userId: clinic.profiles.id });
      const person = pc.connect({ as: "person", token });
      const fresh = { ...clinicRows().patients, branch_id: clinic.branches.id };
      await insertRow(person, "patients", fresh);
      const [written] = await person<{ version: string; who: string }[]>`
        select version::text, auth.uid()::text as who from patients where id = ${fresh.id}`;
      expect(written?.version).toMatch(/^[0-9a-f-]{36}$/);
      expect(written?.who).toBe(clinic.profiles.id);
    } finally {
      await pc.drop();
    }
  });
});

describe("centrovision_sync (the sync daemon's login)", () => {
  it("holds no EHR table, nothing in cv_auth: its work goes through its functions, which run as their owner", async () => {
    expect(await tableGrants("centrovision_sync")).toEqual({});
    await insertClinic(db.sql, clinicRows());
    expect(await failureAs("centrovision_sync", (tx) => tx`select id from branches`)).toBe("42501");
    expect(
      await failureAs("centrovision_sync", (tx) => insertRow(tx, "branches", clinicRows().branches)),
    ).toBe("42501");
  });
});

describe("0003_roles.sql", () => {
  it("leaves PUBLIC without CREATE on schema public", async () => {
    const [acl] = await db.sql<{ public_create: boolean }[]>`
      select exists (
        select from aclexplode((select nspacl from pg_namespace where nspname = 'public')) a
        where a.grantee = 0 and a.privilege_type = 'CREATE'
      ) as public_create`;
    expect(acl?.public_create).toBe(false);
  });

  it("lets a second database of the cluster migrate, with its own key, the roles untouched", async () => {
    const second = await createTestDatabase("cv_roles_second");
    try {
      const key = (sql: postgres.Sql) =>
        sql<{ key_id: string; key: Buffer }[]>`select key_id, key from cv_auth.signing_key`;
      const [[mine], [theirs]] = await Promise.all([key(db.sql), key(second.sql)]);
      expect(theirs?.key).toHaveLength(32);
      expect(theirs?.key_id).not.toBe(mine?.key_id);
      expect(theirs?.key.equals(mine?.key ?? Buffer.alloc(0))).toBe(false);
      const [app] = await db.sql`select rolinherit from pg_roles where rolname = 'centrovision_app'`;
      expect(app).toEqual({ rolinherit: false });
    } finally {
      await second.drop();
    }
  });

  it("lets a Supabase-shaped database migrate as its postgres login after another owner made the roles", async () => {
    // Hosted Supabase's postgres has CREATEROLE but no ADMIN OPTION on roles it did not create
    // (PostgreSQL 16+): 0003 must not alter centrovision_app when it already is as it should be.
    const cloud = await createTestDatabase("cv_roles_cloud", { supabase: true });
    try {
      const [state] = await cloud.sql<{ applied: number }[]>`
        select count(*)::int as applied from cv_meta.schema_migrations`;
      expect(state?.applied).toBe((await readMigrations()).length);
    } finally {
      await cloud.drop();
    }
  });

  it("keeps cv_auth's tables and its own functions away from PUBLIC (pgcrypto's are harmless)", async () => {
    const [leaks] = await db.sql<{ tables: number; functions: string[] }[]>`
      select
        (select count(*)::int from pg_class c where c.relnamespace = 'cv_auth'::regnamespace
          and has_table_privilege('public', c.oid, 'SELECT')) as tables,
        (select coalesce(array_agg(p.oid::regprocedure::text order by 1), '{}') from pg_proc p
          where p.pronamespace in ('cv_auth'::regnamespace, 'auth'::regnamespace)
            and has_function_privilege('public', p.oid, 'EXECUTE')
            and not exists (select from pg_depend d where d.objid = p.oid and d.deptype = 'e')) as functions`;
    expect(leaks).toEqual({ tables: 0, functions: [] });
  });
});
