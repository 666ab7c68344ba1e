import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SUPABASE_SUPERUSER, startLocalSupabase } from "../src/index.js";
import { FIXTURE_DIR, type Harness, startHarness } from "./fixtures/supabase/harness.js";

/*
 * The local Supabase has a hosted project's shape where what we install and call depends on it
 * (supabase/postgres migrations/db: demote-postgres, grant_auth_roles_to_postgres,
 * alter_api_roles_for_inherit, set_authenticator_timeout, the initial schema's timeouts).
 */

let h: Harness;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cv-hosted-shape-"));
  const sleep = join(dir, "sleep.sql");
  await writeFile(
    sleep,
    `create function public.nap(seconds float8) returns text language sql volatile
       as $$ select pg_sleep(seconds)::text || current_setting('statement_timeout') $$;
     create function public.timeout_setting() returns text language sql stable
       as $$ select current_setting('statement_timeout') $$;`,
  );
  h = await startHarness({ sqlFiles: [join(FIXTURE_DIR, "fixture.sql"), sleep] });
});

afterAll(async () => {
  await h?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe("roles", () => {
  it("migrates as postgres, which is not a superuser: CREATEROLE, BYPASSRLS, a member of the API roles", async () => {
    const [role] = await h.sql<
      { super: boolean; createrole: boolean; bypassrls: boolean; member: boolean[] }[]
    >`
      select rolsuper as super, rolcreaterole as createrole, rolbypassrls as bypassrls,
        array[pg_has_role('postgres', 'anon', 'member'), pg_has_role('postgres', 'authenticated', 'member'),
          pg_has_role('postgres', 'service_role', 'member')] as member
      from pg_roles where rolname = 'postgres'`;
    expect(role).toEqual({ super: false, createrole: true, bypassrls: true, member: [true, true, true] });
    const [owners] = await h.sql<{ database: string; people: string; superuser: string }[]>`
      select (select pg_get_userbyid(datdba) from pg_database where datname = current_database()) as database,
        (select pg_get_userbyid(relowner) from pg_class where oid = 'public.people'::regclass) as people,
        current_user as superuser`;
    expect(owners).toEqual({ database: "postgres", people: "postgres", superuser: SUPABASE_SUPERUSER });
    const me = postgres(h.stack.postgresUrl, { max: 1, onnotice: () => {} });
    try {
      await expect(me`set session_replication_role = replica`).rejects.toMatchObject({ code: "42501" });
      await expect(
        me`create function public.x() returns int language sql set cv.custom = 'a' return 1`,
      ).rejects.toMatchObject({
        code: "42501",
      });
    } finally {
      await me.end();
    }
  });

  it("lets the API roles inherit, as hosted projects do", async () => {
    const roles = await h.sql<{ rolname: string; rolinherit: boolean }[]>`
      select rolname, rolinherit from pg_roles where rolname in ('anon', 'authenticated', 'service_role') order by rolname`;
    expect(roles.every((r) => r.rolinherit)).toBe(true);
  });
});

describe("statement timeouts per API role (PostgREST's impersonated role settings)", () => {
  it("gives anon 3 s, a signed-in user 8 s and the service key the login's 8 s", async () => {
    const anon = await h.anon.rpc("timeout_setting");
    const service = await h.service.rpc("timeout_setting");
    const user = await h.asUser(await h.stack.mintUserToken(crypto.randomUUID())).rpc("timeout_setting");
    expect([anon.data, user.data, service.data]).toEqual(["3s", "8s", "8s"]);
  });

  it("cancels a statement past the role's limit with 57014 (HTTP 500), as Supabase does", async () => {
    const database = new URL(h.stack.dbUrl).pathname.slice(1);
    await h.sql.unsafe(`alter role anon in database "${database}" set statement_timeout = '150ms'`);
    try {
      await h.stack.reloadSchema();
      const slow = await h.rest("/rpc/nap", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ seconds: 1 }),
      });
      expect(slow.status).toBe(500);
      expect(slow.json()).toMatchObject({ code: "57014" });
      expect((await h.service.rpc("nap", { seconds: 0.3 })).data).toBe("8s");
    } finally {
      await h.sql.unsafe(`alter role anon in database "${database}" reset statement_timeout`);
      await h.stack.reloadSchema();
    }
  });
});

describe("pg-safeupdate (emulated at start-up)", () => {
  it("refuses to start on a function holding an UPDATE or DELETE without WHERE, naming it", async () => {
    const bad = join(dir, "bad.sql");
    await writeFile(
      bad,
      `create table public.t (a int);
       create function public.wipe() returns void language plpgsql as $$ begin delete from public.t; end $$;`,
    );
    await expect(
      startLocalSupabase({ migrationsDir: FIXTURE_DIR, sqlFiles: [bad], log: () => {} }),
    ).rejects.toThrow(/pg-safeupdate would refuse[\s\S]*public\.wipe\(\): DELETE without WHERE/);
  });
});
