import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogin, type Login } from "./support/clinic-logins.js";
import { createTestDatabase, type TestDatabase } from "./support/test-database.js";

/*
 * Every function sql/ creates, on both tiers, against every role that can connect there: which
 * ones each role can call (EXECUTE on the function and USAGE on its schema, PUBLIC and
 * memberships included). An exact allow-list, so a new function, or a grant Supabase's default
 * privileges hand out, fails here until someone decides who it was written for.
 * schema-api-privileges.test.ts checks the tables and the API's own view of `public`.
 */

/** What a clinic server's daemon calls on the other node (on the cloud, with its node credential). */
const NODE_RPC = [
  "public.cv_sync_ack(uuid, jsonb)",
  "public.cv_sync_apply(jsonb, jsonb, jsonb, jsonb, boolean)",
  "public.cv_sync_apply_deflated(bytea)",
  "public.cv_sync_cursor(uuid)",
  "public.cv_sync_node()",
  "public.cv_sync_pending(uuid)",
  "public.cv_sync_pull(uuid, jsonb, integer)",
  "public.cv_sync_purge(interval, integer)",
  "public.cv_sync_reset_peer(uuid)",
  "public.cv_sync_snapshot(text, uuid, integer)",
];
/** The whole sync machinery of a node: the above, and its own administration. */
const SYNC_RPC = [
  ...NODE_RPC,
  "public.cv_sync_conflict_resolve(uuid, text, jsonb, text)",
  "public.cv_sync_conflicts_list(text, integer)",
  "public.cv_sync_init(text, boolean)",
  // An initial copy into this node: the cloud copies to a clinic server, never the reverse.
  "public.cv_sync_apply_snapshot(jsonb, jsonb)",
  // The node's own changes stamped while its clock ran far ahead, re-stamped (sql/functions/11).
  "public.cv_sync_restamp_ahead()",
];
/** What row-level security's policies call as the signed-in person, and the search fold. */
const POLICY_HELPERS = [
  "public.cv_colleague_ids()",
  "public.cv_may_write(text, text, jsonb)",
  "public.cv_patient_visible(uuid)",
  "public.cv_search_fold(text)",
  "public.cv_user_branch_ids()",
  "public.cv_user_is_admin()",
];
/** A PC's own writes, as its signed-in person (sql/0010). */
const CLIENT_APPLY = [
  "public.cv_client_apply(jsonb, text)",
  "public.cv_client_overlaps(text, uuid, jsonb, text)",
  "public.cv_client_seen(text, uuid, uuid, uuid)",
  "public.cv_client_seen_batch(text[], uuid[], uuid[], uuid[])",
  "public.cv_client_settle(text, uuid, uuid, timestamp with time zone)",
  // The whole-row UPDATE column list cv_client_apply shares with the sync's apply (sql/functions).
  "cv_util.update_columns(text)",
];
/** The PC router's two questions to the clinic server. */
const ROUTER_QUESTIONS = ["public.cv_client_pending(bigint)", "public.cv_client_position()"];
const HEALTH = "public.cv_health()";
/**
 * The audit trail (sql/0012): a person records the records they open, an administrator reads the
 * trail of their patients (both check inside); the sync seals and verifies.
 */
const PERSON_AUDIT = [
  "public.cv_audit_record_opened(uuid, timestamp with time zone)",
  "public.cv_audit_trail(uuid, uuid, timestamp with time zone, timestamp with time zone, integer)",
];
const AUDIT_CHAIN = [
  "public.cv_audit_events(uuid, uuid, timestamp with time zone, timestamp with time zone, integer)",
  "public.cv_audit_seal(integer)",
  "public.cv_audit_verify(uuid)",
];

const CLOUD: Record<string, readonly string[]> = {
  anon: [HEALTH],
  // Any signed-in user may call the node functions, but inside only a registered node credential
  // passes (cv_sync.require_node); the sync-functions test in sync-engine proves the refusal.
  authenticated: [
    ...PERSON_AUDIT,
    "public.cv_audit_head(uuid)",
    "public.cv_audit_receive(jsonb)",
    "public.cv_audit_seal(integer)",
    ...CLIENT_APPLY,
    "public.cv_clinic_register_key(uuid, text)",
    "public.cv_clinic_session(uuid)",
    "public.cv_disabled_users()",
    ...POLICY_HELPERS,
    HEALTH,
    ...NODE_RPC,
  ],
  service_role: [
    ...AUDIT_CHAIN,
    "public.cv_clinic_register_key(uuid, text)",
    "public.cv_disabled_users()",
    ...POLICY_HELPERS,
    HEALTH,
    ...SYNC_RPC,
    "public.cv_sync_register_node(uuid, text, uuid[], boolean)",
  ],
};

const CLINIC: Record<string, readonly string[]> = {
  // Any login of the cluster, e.g. one made for another database's tool.
  anyone: [HEALTH],
  // A PC's login alone: sign in, and the router's questions.
  pc: ["cv_auth.key_id()", "cv_auth.sign_in(text, text)", ...ROUTER_QUESTIONS, HEALTH],
  // The same PC as a signed-in person.
  authenticated: [
    "auth.jwt()",
    "auth.uid()",
    "cv_auth.claims()",
    "cv_auth.enroll(text)",
    "cv_auth.key_id()",
    "cv_auth.sign_in(text, text)",
    "cv_auth.sign_out()",
    ...PERSON_AUDIT,
    ...CLIENT_APPLY,
    ...ROUTER_QUESTIONS,
    ...POLICY_HELPERS,
    HEALTH,
  ],
  // The sync daemon: the sync machinery and the identity copy, nothing of a PC's.
  sync: [
    ...AUDIT_CHAIN,
    "public.cv_audit_sealed_after(bigint, integer)",
    "cv_auth.key_id()",
    "public.cv_clinic_key_export()",
    "public.cv_clinic_set_disabled_users(jsonb)",
    HEALTH,
    ...SYNC_RPC,
  ],
};

let cloud: TestDatabase;
let clinic: TestDatabase;
let pc: Login;
let daemon: Login;
let anyone: string;

beforeAll(async () => {
  [cloud, clinic] = await Promise.all([
    createTestDatabase("cv_fn_cloud", { supabase: true }),
    createTestDatabase("cv_fn_clinic"),
  ]);
  [pc, daemon] = await Promise.all([
    createLogin(clinic, "centrovision_app"),
    createLogin(clinic, "centrovision_sync"),
  ]);
  anyone = `cv_anyone_${pc.name.slice(-8)}`;
  await clinic.sql.unsafe(`create role ${anyone} login`);
});
afterAll(async () => {
  await Promise.all([pc?.drop(), daemon?.drop()]);
  await Promise.all([cloud?.drop(), clinic?.drop()]);
  await clinic?.sql.unsafe(`drop role if exists ${anyone}`).catch(() => {});
});

/** For each role (by its label), the functions of `schemas` it can call, sorted. */
async function callable(db: TestDatabase, schemas: readonly string[], roles: Record<string, string>) {
  const rows = await db.sql<{ role: string; fn: string }[]>`
    select r.role, format('%s.%s(%s)', p.pronamespace::regnamespace::text, p.proname,
      oidvectortypes(p.proargtypes)) as fn
    from pg_proc p cross join unnest(${Object.values(roles)}::text[]) r(role)
    where p.pronamespace::regnamespace::text = any(${schemas as string[]})
      and has_schema_privilege(r.role, p.pronamespace, 'USAGE')
      and has_function_privilege(r.role, p.oid, 'EXECUTE')
    order by 2`;
  return Object.fromEntries(
    Object.entries(roles).map(([label, role]) => [
      label,
      rows.filter((row) => row.role === role).map((row) => row.fn),
    ]),
  );
}

const sorted = (allowed: Record<string, readonly string[]>) =>
  Object.fromEntries(Object.entries(allowed).map(([label, fns]) => [label, [...fns].sort()]));

describe("who can call which function", () => {
  it("on the cloud: exactly the allow-list for anon, a signed-in user and the service key", async () => {
    const roles = { anon: "anon", authenticated: "authenticated", service_role: "service_role" };
    expect(
      await callable(cloud, ["public", "cv_sync", "cv_auth", "cv_meta", "cv_audit", "cv_util"], roles),
    ).toEqual(sorted(CLOUD));
  });

  it("on the clinic server: exactly the allow-list for any login, a PC (alone and as its person) and the daemon", async () => {
    const roles = { anyone, pc: pc.name, authenticated: "authenticated", sync: daemon.name };
    expect(
      await callable(
        clinic,
        ["public", "cv_sync", "cv_auth", "cv_meta", "cv_audit", "auth", "cv_crypto", "cv_util"],
        roles,
      ),
    ).toEqual(sorted(CLINIC));
  });
});
