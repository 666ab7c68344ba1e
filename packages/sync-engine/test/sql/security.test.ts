import { asClinicPerson, type LocalSupabase, startLocalSupabase } from "@centrovision/testkit";
import {
  clinicPerson,
  consultation,
  createNode,
  ensureLogin,
  failureCode,
  insertConsultation,
  openNode,
  rowOf,
  type SqlNode,
  sharedServer,
  update,
  withLogin,
} from "@centrovision/testkit/nodes";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type ApplyResult,
  apply,
  expectConverged,
  identity,
  type Page,
  pull,
  storedCursor,
} from "../support/sql-sync.js";

/*
 * Who may use the machinery. The cloud here is a real local Supabase (roles anon, authenticated,
 * service_role, Supabase's default privileges, the PostgREST-compatible gateway): the sync
 * functions answer service_role over RPC and nobody else. On the clinic server (plain
 * PostgreSQL) a PC's login (centrovision_app) holds no table by itself: it signs in, asks the
 * router's two questions, and otherwise works as its verified person (role authenticated).
 */

let supabase: LocalSupabase;
let cloud: SqlNode;
let clinicNode: SqlNode;
beforeAll(async () => {
  supabase = await startLocalSupabase({ postgres: sharedServer(), log: () => {} });
  [cloud, clinicNode] = await Promise.all([
    openNode("cloud", supabase.dbUrl, async () => {}),
    createNode("clinic"),
  ]);
});
afterAll(async () => {
  await Promise.all([cloud?.drop(), clinicNode?.drop()]);
  await supabase?.stop();
});

/** POST /rest/v1/rpc/<fn> with `key` (the apikey and, unless a user token is given, the bearer). */
async function rpc(
  fn: string,
  args: object,
  key: string,
  bearer = key,
): Promise<{ status: number; body: unknown }> {
  const response = await fetch(`${supabase.url}/rest/v1/rpc/${fn}`, {
    method: "POST",
    headers: { apikey: key, Authorization: `Bearer ${bearer}`, "Content-Type": "application/json" },
    body: JSON.stringify(args),
  });
  const text = await response.text();
  return { status: response.status, body: text === "" ? null : JSON.parse(text) };
}

const ROLES = ["anon", "authenticated", "service_role", "centrovision_app", "centrovision_sync"] as const;

describe("grants", () => {
  it("makes every sync function SECURITY DEFINER with an empty search_path, for the sync roles only", async () => {
    const functions = await cloud.sql<
      { name: string; definer: boolean; config: string[]; public: boolean }[]
    >`
      select p.oid::regprocedure::text as name, p.prosecdef as definer, p.proconfig as config,
        exists (select from aclexplode(p.proacl) a where a.grantee = 0) as public
      from pg_proc p where p.pronamespace = 'public'::regnamespace and p.proname like 'cv\\_sync\\_%'`;
    expect(functions.map((f) => f.name.split("(")[0]).sort()).toEqual(
      [
        "ack",
        "apply",
        "apply_deflated",
        "apply_snapshot",
        "conflict_resolve",
        "conflicts_list",
        "cursor",
        "init",
        "node",
        "pending",
        "pull",
        "purge",
        "register_node",
        "reset_peer",
        "restamp_ahead",
        "snapshot",
      ].map((f) => `cv_sync_${f}`),
    );
    // What a clinic server's daemon calls here with its node credential (a signed-in user, checked
    // inside); the cloud's own administration and registering nodes stay with the service key.
    const forNodes =
      /^cv_sync_(node|pull|cursor|ack|pending|snapshot|apply|apply_deflated|reset_peer|purge)\(/;
    for (const fn of functions) {
      expect(fn).toMatchObject({ definer: true, public: false });
      expect(fn.config).toContain('search_path=""');
      const allowed = await cloud.sql<{ role: string }[]>`
        select r as role from unnest(${ROLES as unknown as string[]}::text[]) r
        where has_function_privilege(r, ${fn.name}::regprocedure, 'EXECUTE') order by r`;
      expect({ fn: fn.name, roles: allowed.map((a) => a.role) }).toEqual({
        fn: fn.name,
        roles: forNodes.test(fn.name)
          ? ["authenticated", "centrovision_sync", "service_role"]
          : fn.name.startsWith("cv_sync_register_node(")
            ? ["service_role"]
            : ["centrovision_sync", "service_role"],
      });
    }
  });

  it("grants nobody anything in schema cv_sync: its tables and helpers are reached through the functions", async () => {
    const grants = await cloud.sql<{ role: string; privileges: string[] }[]>`
      select r as role, array_agg(distinct p order by p) filter (where has_table_privilege(r, c.oid, p)) as privileges
      from unnest(${ROLES as unknown as string[]}::text[]) r, pg_class c,
        unnest(array['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE']) p
      where c.relnamespace = 'cv_sync'::regnamespace and c.relkind = 'r'
      group by r order by r`;
    expect(grants.map((g) => [g.role, g.privileges])).toEqual(ROLES.map((role) => [role, null]).sort());
    const usage = await cloud.sql<{ role: string }[]>`
      select r as role from unnest(${ROLES as unknown as string[]}::text[]) r where has_schema_privilege(r, 'cv_sync', 'USAGE')`;
    expect(usage).toEqual([]);
    const helpers = await cloud.sql<{ n: number }[]>`
      select count(*)::int as n from pg_proc p, unnest(${ROLES as unknown as string[]}::text[]) r
      where p.pronamespace = 'cv_sync'::regnamespace and has_function_privilege(r, p.oid, 'EXECUTE')`;
    expect(helpers[0]?.n).toBe(0);
  });

  it("refuses the functions, the tables and the helpers to an app session (42501)", async () => {
    const asApp = (statement: string) =>
      failureCode(() =>
        cloud.sql.begin(async (tx) => {
          await tx`set local role centrovision_app`;
          await tx.unsafe(statement);
        }),
      );
    expect(await asApp("select cv_sync_node()")).toBe("42501");
    expect(await asApp("select count(*) from cv_sync.change_log")).toBe("42501");
    expect(await asApp("select cv_sync.hlc(0, gen_random_uuid())")).toBe("42501");
  });
});

describe("on the clinic server", () => {
  const PC = { user: "cv_security_pc", password: "security-pc-test-password" };
  // A node of its own: the person written here would otherwise travel with the pages below.
  let server: SqlNode;
  beforeAll(async () => {
    server = await createNode("clinic_roles");
  });
  afterAll(async () => {
    await server?.drop();
  });
  /** Functions `role` may execute beyond what PUBLIC may (pgcrypto's, cv_health). */
  const executable = async (role: string) =>
    (
      await server.sql<{ fn: string }[]>`
        select p.oid::regprocedure::text as fn from pg_proc p
        where p.pronamespace in ('public'::regnamespace, 'auth'::regnamespace, 'cv_auth'::regnamespace,
            'cv_sync'::regnamespace)
          and has_function_privilege(${role}, p.oid, 'EXECUTE')
          and not exists (select from aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
            where a.grantee = 0 and a.privilege_type = 'EXECUTE')
        order by 1`
    ).map((row) => row.fn);
  const tablesOf = async (role: string) =>
    (
      await server.sql<{ table: string }[]>`
        select distinct c.oid::regclass::text as table from pg_class c,
          unnest(array['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE']) p
        where c.relkind = 'r' and c.relnamespace in ('public'::regnamespace, 'cv_auth'::regnamespace,
            'cv_sync'::regnamespace)
          and has_table_privilege(${role}, c.oid, p)
        order by 1`
    ).map((row) => row.table);

  it("centrovision_app alone: no table, only sign-in and the router's two questions; it may take `authenticated`, without inheriting it", async () => {
    const [role] = await server.sql<{ inherit: boolean; login: boolean; set: boolean; usage: boolean }[]>`
      select r.rolinherit as inherit, r.rolcanlogin as login,
        pg_has_role('centrovision_app', 'authenticated', 'SET') as set,
        pg_has_role('centrovision_app', 'authenticated', 'USAGE') as usage
      from pg_roles r where r.rolname = 'centrovision_app'`;
    expect(role).toEqual({ inherit: false, login: false, set: true, usage: false });
    expect(await tablesOf("centrovision_app")).toEqual([]);
    expect(await executable("centrovision_app")).toEqual([
      "cv_auth.key_id()",
      "cv_auth.sign_in(text,text)",
      "cv_client_pending(bigint)",
      "cv_client_position()",
    ]);
  });

  it("`authenticated`: the EHR tables (under row-level security) and the client functions, nothing of the sync or the key", async () => {
    const tables = await tablesOf("authenticated");
    expect(tables.filter((table) => table.startsWith("cv_"))).toEqual([]);
    expect(tables).toHaveLength(10);
    const [unprotected] = await server.sql<{ n: number }[]>`
      select count(*)::int as n from pg_class c
      where c.relnamespace = 'public'::regnamespace and c.relkind = 'r'
        and has_table_privilege('authenticated', c.oid, 'SELECT') and not c.relrowsecurity`;
    expect(unprotected?.n).toBe(0);
    const functions = await executable("authenticated");
    expect(
      functions.filter((fn) => /^cv_sync|cv_clinic_key_export|cv_clinic_set_disabled_users/.test(fn)),
    ).toEqual([]);
    expect(functions).toEqual(
      expect.arrayContaining([
        "cv_client_apply(jsonb,text)",
        "cv_client_seen(text,uuid,uuid,uuid)",
        "cv_client_seen_batch(text[],uuid[],uuid[],uuid[])",
        "cv_client_settle(text,uuid,uuid,timestamp with time zone)",
        "cv_client_overlaps(text,uuid,jsonb,text)",
        "auth.uid()",
      ]),
    );
  });

  it("refuses the sync functions, the log and the signing key to a PC, alone or as its verified person (42501)", async () => {
    const person = await clinicPerson(server);
    const url = withLogin(server.url, await ensureLogin(PC, "centrovision_app"));
    for (const connection of [{}, asClinicPerson(person.token)]) {
      const pc = postgres(url, { max: 1, onnotice: () => {}, connection });
      try {
        const code = (statement: string) => failureCode(() => pc.unsafe(statement));
        expect(await code("select cv_sync_node()")).toBe("42501");
        expect(await code("select count(*) from cv_sync.change_log")).toBe("42501");
        expect(await code("select cv_sync.hlc(0, gen_random_uuid())")).toBe("42501");
        expect(await code("select key from cv_auth.signing_key")).toBe("42501");
        expect(await code("select public.cv_clinic_key_export()")).toBe("42501");
        // pgcrypto lives in a schema no API role may use: crypt() only through cv_auth.sign_in.
        expect(await code("select cv_crypto.gen_salt('bf')")).toBe("42501");
        // Alone it reads no EHR row; as the person, what the policies allow (none of its own here).
        expect(await code("select count(*) from patients")).toBe("role" in connection ? undefined : "42501");
        expect(await code("select cv_client_position()")).toBeUndefined();
      } finally {
        await pc.end();
      }
    }
  });

  it("answers whether a row was deleted only to a caller naming a version of it (cv_client_seen)", async () => {
    const rows = consultation();
    await insertConsultation(server.sql, rows);
    const [held] = await server.sql<
      { version: string }[]
    >`select version from diagnoses where id = ${rows.diagnoses.id}`;
    await server.sql`delete from diagnoses where id = ${rows.diagnoses.id}`;
    const person = await clinicPerson(server);
    const url = withLogin(server.url, await ensureLogin(PC, "centrovision_app"));
    const pc = postgres(url, { max: 1, onnotice: () => {}, connection: asClinicPerson(person.token) });
    try {
      const seen = async (base: string | null) =>
        (
          await pc<{ seen: string }[]>`
            select public.cv_client_seen('diagnoses', ${rows.diagnoses.id}, ${crypto.randomUUID()}, ${base}) as seen`
        )[0]?.seen;
      // The id alone, or with a version this server never had: nothing to tell.
      expect(await seen(null)).toBe("unseen");
      expect(await seen(crypto.randomUUID())).toBe("unseen");
      // A version of the row it held: its edit meets the delete (and is settled, not lost).
      expect(await seen(held?.version ?? null)).toBe("deleted");
    } finally {
      await pc.end();
    }
  });

  it("finds a double booking only among the appointments the caller's person sees (cv_client_overlaps)", async () => {
    const rows = consultation();
    const elsewhere = consultation();
    await insertConsultation(server.sql, rows);
    await insertConsultation(server.sql, elsewhere);
    // The doctor also works at another branch, where the person does not: booked there at the same time.
    const [span] = await server.sql<{ starts_at: Date; ends_at: Date }[]>`
      select starts_at, ends_at from appointments where id = ${rows.appointments.id}`;
    await server.sql`insert into user_branches (id, user_id, branch_id)
      values (gen_random_uuid(), ${rows.profiles.id}, ${elsewhere.branches.id})`;
    await server.sql`update appointments set doctor_id = ${rows.profiles.id}, starts_at = ${span?.starts_at ?? null},
      ends_at = ${span?.ends_at ?? null} where id = ${elsewhere.appointments.id}`;
    const person = await clinicPerson(server, { branches: [rows.branches.id] });
    const url = withLogin(server.url, await ensureLogin(PC, "centrovision_app"));
    const pc = postgres(url, { max: 1, onnotice: () => {}, connection: asClinicPerson(person.token) });
    try {
      const found = async () =>
        (
          await pc<{ o: unknown[] }[]>`
            select public.cv_client_overlaps('appointments', ${rows.appointments.id}, null, 'settle') as o`
        )[0]?.o;
      expect(await found()).toEqual([]);
      // The same clash in the person's own branch is found.
      const mine = { ...rows.appointments, id: crypto.randomUUID() };
      await server.sql`insert into appointments ${server.sql(mine)}`;
      expect(await found()).toEqual([
        { id: rows.appointments.id, with: mine.id, columns: ["patient_id", "doctor_id", "room_id"] },
      ]);
    } finally {
      await pc.end();
    }
  });
});

describe("the author of a change on the cloud", () => {
  it("is the token's user, how they signed in and their session; the gateway is no device", async () => {
    const user = crypto.randomUUID();
    const session = crypto.randomUUID();
    const author = await cloud.sql.begin(async (tx) => {
      const claims = {
        sub: user,
        role: "authenticated",
        amr: [{ method: "password", timestamp: 1 }],
        session_id: session,
      };
      await tx`select set_config('request.jwt.claims', ${JSON.stringify(claims)}, true)`;
      return (await tx<{ author: unknown }[]>`select cv_sync.current_author() as author`)[0]?.author;
    });
    expect(author).toEqual({ user, sign_in: "password", session, node: cloud.id });
  });
});

describe("over the Supabase RPC gateway", () => {
  it("answers service_role, and refuses anon and a signed-in user with 42501", async () => {
    expect(await rpc("cv_sync_node", {}, supabase.serviceRoleKey)).toMatchObject({ status: 200 });
    expect(await rpc("cv_sync_node", {}, supabase.anonKey)).toMatchObject({
      status: 401,
      body: { code: "42501" },
    });
    const user = await supabase.mintUserToken(crypto.randomUUID());
    const args = { p_consumer: clinicNode.id, p_after: { txid: 0, seq: 0 }, p_limit: 10 };
    expect(await rpc("cv_sync_pull", args, supabase.anonKey, user)).toMatchObject({
      status: 403,
      body: { code: "42501", message: "only a clinic server's node credential may call the sync functions" },
    });
    // The purge a node may call is refused to any other signed-in user.
    expect(await rpc("cv_sync_purge", { p_retention: "7 days" }, supabase.anonKey, user)).toMatchObject({
      status: 403,
      body: { code: "42501" },
    });
  });

  it("moves pages both ways through it: pushes applied by cv_sync_apply, pulls read by cv_sync_pull", async () => {
    const key = supabase.serviceRoleKey;
    const rows = consultation();
    await insertConsultation(clinicNode.sql, rows);
    const pushed = await pull(clinicNode, cloud, await storedCursor(cloud, clinicNode));
    const push = await rpc(
      "cv_sync_apply",
      {
        p_source: await identity(clinicNode),
        p_expected: await storedCursor(cloud, clinicNode),
        p_cursor: pushed.cursor,
        p_changes: pushed.changes,
      },
      key,
    );
    expect(push).toMatchObject({ status: 200, body: { status: "applied", applied: 10 } });

    await update(cloud.sql, "patients", rows.patients.id, { phone: "55 4444 4444" });
    const expected = await storedCursor(clinicNode, cloud);
    const pulled = await rpc(
      "cv_sync_pull",
      { p_consumer: clinicNode.id, p_after: expected, p_limit: 100 },
      key,
    );
    const [header, ...chunks] = pulled.body as [Omit<Page, "changes">, ...Page["changes"][]];
    const page: Page = { ...header, changes: chunks.flat() };
    expect(page.changes.map((c) => c.table)).toEqual(["patients"]);
    const result: ApplyResult = await apply(clinicNode, await identity(cloud), expected, page);
    expect(result).toMatchObject({ status: "applied", applied: 1 });
    await expectConverged(cloud, clinicNode);
  });

  it("answers a registered node credential as the one clinic server it first synced as, and only the node functions", async () => {
    const nodeUser = crypto.randomUUID();
    const name = `Clínica ${nodeUser.slice(0, 8)}`;
    const register = (user: string, as: string) =>
      rpc(
        "cv_sync_register_node",
        { p_user_id: user, p_name: as, p_branch_ids: null },
        supabase.serviceRoleKey,
      );
    expect(await register(nodeUser, name)).toEqual({ status: 200, body: null });
    expect(await register(nodeUser, name)).toEqual({ status: 200, body: null });
    expect(await register(crypto.randomUUID(), name)).toMatchObject({ status: 400, body: { code: "CV005" } });
    const node = await supabase.mintUserToken(nodeUser);
    // A node credential cannot register nodes itself.
    expect(
      (
        await rpc(
          "cv_sync_register_node",
          { p_user_id: nodeUser, p_name: "x", p_branch_ids: null },
          supabase.anonKey,
          node,
        )
      ).status,
    ).not.toBe(204);

    const as = (fn: string, args: object) => rpc(fn, args, supabase.anonKey, node);
    expect(await as("cv_sync_node", {})).toMatchObject({ status: 200 });
    const mine = crypto.randomUUID();
    const cursor = { txid: 0, seq: 0 };
    expect(await as("cv_sync_pull", { p_consumer: mine, p_after: cursor, p_limit: 10 })).toMatchObject({
      status: 200,
    });
    // Its first acknowledgement binds it to its clinic server's node id; another one is refused.
    expect(await as("cv_sync_ack", { p_consumer: mine, p_cursor: cursor })).toMatchObject({ status: 204 });
    expect(await as("cv_sync_ack", { p_consumer: clinicNode.id, p_cursor: cursor })).toMatchObject({
      status: 403,
      body: { code: "42501", message: "this node credential belongs to another clinic server" },
    });
    expect(await as("cv_sync_reset_peer", { p_peer: clinicNode.id })).toMatchObject({ status: 403 });
    expect(await as("cv_sync_reset_peer", { p_peer: mine })).toMatchObject({ status: 200 });
    // It keeps the cloud's log bounded, but never below 7 days nor in more than 10,000 at a time.
    await cloud.sql`insert into cv_sync.peers (peer_id, acked_txid, acked_seq)
      values (${mine}, 9223372036854775807, 9223372036854775807)
      on conflict (peer_id) do update set acked_txid = excluded.acked_txid, acked_seq = excluded.acked_seq`;
    const [young] = await cloud.sql<{ n: number }[]>`
      select count(*)::int as n from cv_sync.change_log where recorded_at >= now() - interval '7 days'`;
    expect(await as("cv_sync_purge", { p_retention: "0 seconds", p_limit: 1_000_000 })).toMatchObject({
      status: 200,
      body: { more: false },
    });
    const [left] = await cloud.sql<{ n: number }[]>`
      select count(*)::int as n from cv_sync.change_log where recorded_at >= now() - interval '7 days'`;
    expect(left?.n).toBe(young?.n);
    // The cloud's own administration stays with the service key.
    for (const [fn, args] of [
      ["cv_sync_init", { p_node_name: "secuestrado" }],
      ["cv_sync_conflicts_list", {}],
    ] as const) {
      expect((await as(fn, args)).status, fn).toBeGreaterThanOrEqual(400);
    }
    // And it reads no EHR row: row-level security gives a user without branches nothing.
    const patients = async (bearer: string) =>
      (await (
        await fetch(`${supabase.url}/rest/v1/patients?select=id`, {
          headers: { apikey: supabase.anonKey, Authorization: `Bearer ${bearer}` },
        })
      ).json()) as unknown[];
    expect((await patients(supabase.serviceRoleKey)).length).toBeGreaterThan(0);
    expect(await patients(node)).toEqual([]);
  });

  it("gives a clinic's name to a new node credential, bound to the same clinic server, and drops the old one", async () => {
    const [old, replacement] = [crypto.randomUUID(), crypto.randomUUID()];
    const name = `Clínica ${old.slice(0, 8)}`;
    const register = (user: string, replace: boolean) =>
      rpc(
        "cv_sync_register_node",
        { p_user_id: user, p_name: name, p_branch_ids: null, p_replace: replace },
        supabase.serviceRoleKey,
      );
    expect(await register(old, false)).toEqual({ status: 200, body: null });
    const server = crypto.randomUUID();
    const ack = async (user: string, consumer: string) =>
      rpc(
        "cv_sync_ack",
        { p_consumer: consumer, p_cursor: { txid: 0, seq: 0 } },
        supabase.anonKey,
        await supabase.mintUserToken(user),
      );
    expect(await ack(old, server)).toMatchObject({ status: 204 });
    expect(await register(replacement, false)).toMatchObject({ status: 400, body: { code: "CV005" } });
    expect(await register(replacement, true)).toEqual({ status: 200, body: old });
    expect(await ack(old, server)).toMatchObject({ status: 403, body: { code: "42501" } });
    expect(await ack(replacement, server)).toMatchObject({ status: 204 });
    expect(await ack(replacement, crypto.randomUUID())).toMatchObject({
      status: 403,
      body: { code: "42501" },
    });
  });

  it("applies a node credential's own changes only: one naming another node as its origin, or an eviction, is CV005", async () => {
    const rows = consultation();
    await insertConsultation(cloud.sql, rows);
    const sender = await createNode("clinic_sender");
    try {
      const user = crypto.randomUUID();
      const registered = await rpc(
        "cv_sync_register_node",
        { p_user_id: user, p_name: `Clínica ${user.slice(0, 8)}`, p_branch_ids: null },
        supabase.serviceRoleKey,
      );
      expect(registered.status).toBe(200);
      const token = await supabase.mintUserToken(user);
      const source = await identity(sender);
      const expected = await storedCursor(cloud, sender);
      const id = rows.patients.id;
      const before = await rowOf(cloud.sql, "patients", id);
      const current = JSON.parse(JSON.stringify(before)) as Record<string, unknown>;
      const change = (origin: string, op: "upsert" | "evict", allergies: string) => {
        const version = crypto.randomUUID();
        return {
          table: "patients",
          row_id: id,
          op,
          row: { ...current, allergies, version, base_version: current.version },
          version,
          base_version: current.version,
          origin,
          // Another node's own counter, far ahead: as that node's newer edit, it would win with no conflict kept.
          hlc: `${String(Date.now()).padStart(15, "0")}.9999999999.${origin}`,
          changed_columns: ["allergies"],
          resolves: null,
          author: null,
        };
      };
      const send = (changes: object[]) =>
        rpc(
          "cv_sync_apply",
          {
            p_source: source,
            p_expected: expected,
            p_cursor: { txid: expected.txid + 1, seq: 0 },
            p_changes: changes,
          },
          supabase.anonKey,
          token,
        );
      for (const forged of [
        change(clinicNode.id, "upsert", "Ninguna"),
        change((await identity(cloud)).node_id as string, "upsert", "Ninguna"),
        change(sender.id, "evict", "Ninguna"),
      ]) {
        const refused = await send([change(sender.id, "upsert", "Polen"), forged]);
        expect(refused, `${forged.op} of ${forged.origin}`).toMatchObject({
          status: 400,
          body: { code: "CV005" },
        });
      }
      expect(await rowOf(cloud.sql, "patients", id)).toEqual(before);
      expect(await send([change(sender.id, "upsert", "Polen")])).toMatchObject({
        status: 200,
        body: { status: "applied", applied: 1 },
      });
      expect(await rowOf(cloud.sql, "patients", id)).toMatchObject({ allergies: "Polen" });
    } finally {
      await sender.drop();
    }
  });
});
