import { randomUUID } from "node:crypto";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "./support/test-database.js";

/*
 * Everything in the schemas Supabase's REST API exposes, with what each API role may do with it,
 * against an explicit allow-list: a new table, view, sequence or function, or a privilege handed
 * out by Supabase's default privileges, fails here until someone decides it belongs.
 * Hosted projects also expose `graphql_public` and `storage`, which sql/ never touches.
 */

const EXPOSED_SCHEMAS = ["public"];
const API_ROLES = ["anon", "authenticated", "service_role"] as const;
type Grants = Partial<Record<(typeof API_ROLES)[number], readonly string[]>>;

const ROWS = ["DELETE", "INSERT", "SELECT", "UPDATE"];
/** EHR tables: signed-in users under row-level security, the service key past it; anon nothing. */
const EHR_TABLE: Grants = { authenticated: ROWS, service_role: ROWS };
const SIGNED_IN: Grants = { authenticated: ["EXECUTE"], service_role: ["EXECUTE"] };
const SYNC_ONLY: Grants = { service_role: ["EXECUTE"] };
const PERSON_ONLY: Grants = { authenticated: ["EXECUTE"] };
/** A clinic server's node credential (a signed-in user, checked inside) and the service key. */
const NODE: Grants = SIGNED_IN;
/** A clinic server's node credential only (checked inside): handing over its audit trail. */
const NODE_ONLY: Grants = { authenticated: ["EXECUTE"] };

const ALLOWED: Readonly<Record<string, Grants>> = {
  "table public.branches": EHR_TABLE,
  "table public.rooms": EHR_TABLE,
  "table public.profiles": EHR_TABLE,
  "table public.user_roles": EHR_TABLE,
  "table public.user_branches": EHR_TABLE,
  "table public.patients": EHR_TABLE,
  "table public.appointments": EHR_TABLE,
  "table public.encounters": EHR_TABLE,
  "table public.exam_eye": EHR_TABLE,
  "table public.diagnoses": EHR_TABLE,
  // The router's probe: the only thing the anon key opens.
  "function public.cv_health()": {
    anon: ["EXECUTE"],
    authenticated: ["EXECUTE"],
    service_role: ["EXECUTE"],
  },
  "function public.cv_touch_row()": {},
  "function public.cv_search_fold(text)": SIGNED_IN,
  // Row-level security's helpers: a user learns their own branches and colleagues, as the tables say.
  "function public.cv_user_branch_ids()": SIGNED_IN,
  "function public.cv_colleague_ids()": SIGNED_IN,
  "function public.cv_patient_visible(uuid)": SIGNED_IN,
  // The write rules for the signed-in person; for anyone else (the cloud's author check) the owner's alone.
  "function public.cv_may_write(text, text, jsonb)": SIGNED_IN,
  "function public.cv_row_writable(text, text, jsonb, jsonb, uuid)": {},
  "function public.cv_row_writable_in(text, text, jsonb, jsonb, uuid, uuid[])": {},
  "function public.cv_patient_visible_in(uuid, uuid[])": {},
  "function public.cv_profile_visible_in(uuid, uuid[], uuid)": {},
  "function public.cv_patient_home_guard()": {},
  "function public.cv_user_is_admin()": SIGNED_IN,
  // A PC's writes, as its signed-in person under the policies (never the service key, past them);
  // the router's two questions are for the clinic server, not the cloud.
  "function public.cv_client_apply(jsonb, text)": PERSON_ONLY,
  "function public.cv_client_seen(text, uuid, uuid, uuid)": PERSON_ONLY,
  "function public.cv_client_seen_batch(text[], uuid[], uuid[], uuid[])": PERSON_ONLY,
  "function public.cv_client_settle(text, uuid, uuid, timestamp with time zone)": PERSON_ONLY,
  "function public.cv_client_overlaps(text, uuid, jsonb, text)": PERSON_ONLY,
  "function public.cv_client_pending(bigint)": {},
  "function public.cv_client_position()": {},
  // The sync machinery: the clinic daemon's key only.
  "function public.cv_sync_init(text, boolean)": SYNC_ONLY,
  "function public.cv_sync_node()": NODE,
  "function public.cv_sync_pull(uuid, jsonb, integer)": NODE,
  "function public.cv_sync_cursor(uuid)": NODE,
  "function public.cv_sync_ack(uuid, jsonb)": NODE,
  "function public.cv_sync_pending(uuid)": NODE,
  "function public.cv_sync_snapshot(text, uuid, integer)": NODE,
  // Keeping the cloud's log bounded: a node credential within the floor it sets for one.
  "function public.cv_sync_purge(interval, integer)": NODE,
  "function public.cv_sync_apply(jsonb, jsonb, jsonb, jsonb, boolean)": NODE,
  // Not a node's: its push replays its log; a copied row names any origin.
  "function public.cv_sync_apply_snapshot(jsonb, jsonb)": SYNC_ONLY,
  // The same apply, its arguments deflated in the request body (sql/functions/09_deflated.sql).
  "function public.cv_sync_apply_deflated(bytea)": NODE,
  "function public.cv_sync_reset_peer(uuid)": NODE,
  "function public.cv_sync_conflicts_list(text, integer)": SYNC_ONLY,
  "function public.cv_sync_conflict_resolve(uuid, text, jsonb, text)": SYNC_ONLY,
  "function public.cv_sync_register_node(uuid, text, uuid[], boolean)": SYNC_ONLY,
  // A node's own changes stamped while its clock ran far ahead (sql/functions/11): its own sync.
  "function public.cv_sync_restamp_ahead()": SYNC_ONLY,
  // The audit trail (0012): a person records the records they open, an administrator reads the
  // trail of their patients; the service key seals the cloud's chain and verifies it.
  "function public.cv_audit_record_opened(uuid, timestamp with time zone)": PERSON_ONLY,
  "function public.cv_audit_trail(uuid, uuid, timestamp with time zone, timestamp with time zone, integer)":
    PERSON_ONLY,
  "function public.cv_audit_seal(integer)": NODE,
  "function public.cv_audit_verify(uuid)": SYNC_ONLY,
  "function public.cv_audit_head(uuid)": NODE_ONLY,
  "function public.cv_audit_receive(jsonb)": NODE_ONLY,
  "function public.cv_audit_sealed_after(bigint, integer)": {},
  "function public.cv_audit_events(uuid, uuid, timestamp with time zone, timestamp with time zone, integer)":
    SYNC_ONLY,
  // Clinic sessions (0011): a signed-in person asks for one; the clinic daemon's key registers the
  // clinic server's signing key and copies the disabled users. The service key mints no session.
  "function public.cv_clinic_session(uuid)": PERSON_ONLY,
  "function public.cv_clinic_register_key(uuid, text)": NODE,
  "function public.cv_disabled_users()": NODE,
};

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase("cv_api_privileges", { supabase: true });
});
afterAll(async () => {
  await db?.drop();
});

interface Found {
  object: string;
  role: string;
  privileges: string[] | null;
}

/** Every object in the exposed schemas × every API role, with the privileges the role holds (PUBLIC and memberships included). */
async function granted(): Promise<Record<string, Grants>> {
  const rows = await db.sql<Found[]>`
    with objects as (
      select format('%s %s', case c.relkind when 'S' then 'sequence' when 'v' then 'view'
          when 'm' then 'materialized view' when 'f' then 'foreign table' else 'table' end,
          format('%I.%I', c.relnamespace::regnamespace::text, c.relname)) as object,
        c.oid, c.relkind = 'S' as is_sequence, false as is_function
      from pg_class c
      where c.relnamespace::regnamespace::text = any(${EXPOSED_SCHEMAS}) and c.relkind in ('r', 'p', 'v', 'm', 'f', 'S')
      union all
      select format('function %I.%I(%s)', p.pronamespace::regnamespace::text, p.proname,
          oidvectortypes(p.proargtypes)), p.oid, false, true
      from pg_proc p
      where p.pronamespace::regnamespace::text = any(${EXPOSED_SCHEMAS})
    )
    select o.object, r.role, (
      select array_agg(p order by p) from unnest(case
          when o.is_function then array['EXECUTE']
          when o.is_sequence then array['SELECT', 'UPDATE', 'USAGE']
          else array['DELETE', 'INSERT', 'REFERENCES', 'SELECT', 'TRIGGER', 'TRUNCATE', 'UPDATE'] end) p
      where case
          when o.is_function then has_function_privilege(r.role, o.oid, p)
          when o.is_sequence then has_sequence_privilege(r.role, o.oid, p)
          else has_table_privilege(r.role, o.oid, p) end
    ) as privileges
    from objects o cross join unnest(${[...API_ROLES]}::text[]) r(role)
    order by o.object, r.role`;
  const result: Record<string, Grants> = {};
  for (const row of rows) {
    const grants = result[row.object] ?? {};
    if (row.privileges !== null) grants[row.role as (typeof API_ROLES)[number]] = row.privileges;
    result[row.object] = grants;
  }
  return result;
}

describe("what Supabase's REST API can reach (hosted shape, migrated as postgres)", () => {
  it("is exactly the allow-list: every object in an exposed schema, every API role", async () => {
    expect(await granted()).toEqual(ALLOWED);
  });

  it("puts row-level security on every table an API role other than service_role can touch", async () => {
    const exposed = await db.sql<{ table: string }[]>`
      select format('%I.%I', c.relnamespace::regnamespace::text, c.relname) as table from pg_class c
      where c.relnamespace::regnamespace::text = any(${EXPOSED_SCHEMAS}) and c.relkind in ('r', 'p')
        and not c.relrowsecurity
        and (has_table_privilege('anon', c.oid, 'SELECT, INSERT, UPDATE, DELETE')
          or has_table_privilege('authenticated', c.oid, 'SELECT, INSERT, UPDATE, DELETE'))`;
    expect(exposed).toEqual([]);
  });

  it("exposes nothing of the bookkeeping: the migration records live outside the API's schemas", async () => {
    const [where] = await db.sql<{ schema: string }[]>`
      select relnamespace::regnamespace::text as schema from pg_class where oid = 'cv_meta.schema_migrations'::regclass`;
    expect(where?.schema).toBe("cv_meta");
    const usage = await db.sql<{ role: string }[]>`
      select r as role from unnest(${[...API_ROLES]}::text[]) r where has_schema_privilege(r, 'cv_meta', 'USAGE')`;
    expect(usage).toEqual([]);
  });
});

describe("the sync-apply marker on the hosted shape", () => {
  it("refuses a write by the project's postgres login, or the service key's role, that set it themselves", async () => {
    const owner = postgres(db.postgresUrl ?? "", { max: 1, onnotice: () => {} });
    try {
      // Both bypass row-level security: the refusal can only be the marker's guard.
      for (const role of [null, "service_role"]) {
        const attempt = owner.begin(async (tx) => {
          if (role !== null) await tx.unsafe(`set local role ${role}`);
          await tx`select set_config('centrovision.sync_origin', ${randomUUID()}, true)`;
          await tx`insert into branches (id, code, name, address) values (${randomUUID()}, 'FORJA', 'Forjada', 'x')`;
        });
        await expect(attempt).rejects.toMatchObject({
          code: "42501",
          message: expect.stringMatching(/reserved for the sync machinery/),
        });
      }
    } finally {
      await owner.end();
    }
    expect(await db.sql`select id from branches where code = 'FORJA'`).toEqual([]);
  });
});
