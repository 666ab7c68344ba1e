import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { MIGRATIONS_DIR } from "@centrovision/testkit";
import type postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TABLE_NAMES } from "../src/tables/index.js";
import { clinicRows, insertRow } from "./support/ehr-fixtures.js";
import { createTestDatabase, rolledBack, type TestDatabase } from "./support/test-database.js";

/* sql/0003_roles.sql: least-privilege group roles for the app and the sync daemon. */

const ROLES = ["centrovision_app", "centrovision_sync"] as const;
const ROW_PRIVILEGES = ["DELETE", "INSERT", "SELECT", "UPDATE"];

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase("cv_roles");
});
afterAll(async () => {
  await db?.drop();
});

/** The SQLSTATE `statement` fails with when run as `role`, or undefined if it succeeds. */
async function failureAs(role: string, statement: (tx: postgres.TransactionSql) => Promise<unknown>) {
  let code: string | undefined;
  await rolledBack(db.sql, async (tx) => {
    await tx.unsafe(`set local role ${role}`);
    try {
      await statement(tx);
    } catch (error) {
      code = (error as postgres.PostgresError).code;
    }
  });
  return code;
}

describe.each(ROLES)("%s", (role) => {
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

  it("holds exactly SELECT, INSERT, UPDATE and DELETE on the EHR tables, and nothing else", async () => {
    const grants = await db.sql<{ table_name: string; privileges: string[] }[]>`
      select table_name, array_agg(privilege_type::text order by privilege_type) as privileges
      from information_schema.role_table_grants
      where grantee = ${role}
      group by table_name`;
    expect(Object.fromEntries(grants.map((g) => [g.table_name, g.privileges]))).toEqual(
      Object.fromEntries(TABLE_NAMES.map((table) => [table, ROW_PRIVILEGES])),
    );
    const [extra] = await db.sql<{ count: number }[]>`
      select count(*)::int as count
      from unnest(${TABLE_NAMES as unknown as string[]}::text[]) t(name),
        unnest(array['TRUNCATE', 'REFERENCES', 'TRIGGER', 'MAINTAIN']) p(privilege)
      where has_table_privilege(${role}, 'public.' || t.name, p.privilege)`;
    expect(extra?.count).toBe(0);
  });

  it("may use schema public but not create objects in it", async () => {
    const [privileges] = await db.sql`
      select has_schema_privilege(${role}, 'public', 'USAGE') as usage,
             has_schema_privilege(${role}, 'public', 'CREATE') as create`;
    expect(privileges).toEqual({ usage: true, create: false });
  });

  it("writes rows, through the row-version trigger", async () => {
    const branch = clinicRows().branches;
    expect(await failureAs(role, (tx) => insertRow(tx, "branches", branch))).toBeUndefined();
    expect(await failureAs(role, (tx) => tx`select id from branches`)).toBeUndefined();
  });

  it.each([
    ["truncate a table", "truncate branches cascade"],
    ["alter a table", "alter table branches add column x int"],
    ["create a table", "create table public.x (id int)"],
    ["drop a table", "drop table diagnoses"],
    ["read the migration log", "select * from cv_meta.schema_migrations"],
  ])("cannot %s", async (_what, statement) => {
    expect(await failureAs(role, (tx) => tx.unsafe(statement))).toBe("42501");
  });
});

describe("0003_roles.sql", () => {
  it("runs again without error, as on a second database of the same cluster", async () => {
    const text = await readFile(join(MIGRATIONS_DIR, "0003_roles.sql"), "utf8");
    await expect(db.sql.begin((tx) => tx.unsafe(text))).resolves.toBeDefined();
  });

  it("leaves PUBLIC without CREATE on schema public", async () => {
    const [acl] = await db.sql<{ public_create: boolean }[]>`
      select exists (
        select from aclexplode((select nspacl from pg_namespace where nspname = 'public')) a
        where a.grantee = 0 and a.privilege_type = 'CREATE'
      ) as public_create`;
    expect(acl?.public_create).toBe(false);
  });
});
