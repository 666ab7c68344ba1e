/**
 * Gives a database the shape of a hosted Supabase project before any migration runs, where it
 * matters to what we install and call (supabase/postgres `migrations/db`: the initial schema,
 * `demote-postgres`, `grant_auth_roles_to_postgres`, `alter_api_roles_for_inherit`,
 * `set_authenticator_timeout`, …):
 *   - `postgres` is not a superuser: CREATEDB CREATEROLE LOGIN REPLICATION BYPASSRLS, a member of
 *     `anon`, `authenticated`, `service_role`, `pg_read_all_data`, `pg_signal_backend`; it owns
 *     the database and runs the migrations;
 *   - the API roles inherit; `authenticator` (the gateway's login) switches to them;
 *   - statement timeouts: `anon` 3 s, `authenticated` 8 s, `authenticator` 8 s (and its
 *     lock_timeout 8 s), which `service_role` inherits through the login;
 *   - objects `postgres` creates in `public` are granted to the API roles by default;
 *   - the `auth` schema with `auth.uid()/role()/email()/jwt()`, Supabase Auth's users, sessions
 *     and refresh tokens (auth-shape.ts) owned by `supabase_auth_admin`, the Auth server's login,
 *     and the DDL watch that tells the gateway to reload its schema cache.
 * pg-safeupdate cannot be loaded here (no server headers to build it); see safeupdate.ts.
 */
import postgres from "postgres";
import { AUTH_SCHEMA_SQL } from "./auth-shape.js";

/** The cluster's superuser on a hosted project, and here; `postgres` is demoted. */
export const SUPABASE_SUPERUSER = "supabase_admin";

/** Roles are cluster-wide: created once, serialised by an advisory lock in the maintenance database. */
function rolesSql(passwords: ShapePasswords): string {
  // DDL takes no parameters; the passwords are our own hex strings, checked by the caller.
  return `
    do $$
    begin
      if not exists (select from pg_roles where rolname = 'anon') then
        create role anon nologin;
      end if;
      if not exists (select from pg_roles where rolname = 'authenticated') then
        create role authenticated nologin;
      end if;
      if not exists (select from pg_roles where rolname = 'service_role') then
        create role service_role nologin bypassrls;
      end if;
      if not exists (select from pg_roles where rolname = 'authenticator') then
        create role authenticator login noinherit;
      end if;
      if not exists (select from pg_roles where rolname = 'postgres') then
        create role postgres login;
      end if;
      if not exists (select from pg_roles where rolname = 'supabase_auth_admin') then
        create role supabase_auth_admin login noinherit createrole;
      end if;
    end
    $$;
    alter role anon inherit;
    alter role authenticated inherit;
    alter role service_role inherit;
    alter role authenticator with login noinherit password '${passwords.authenticator}';
    grant anon, authenticated, service_role to authenticator;
    alter role postgres with nosuperuser createdb createrole login replication bypassrls
      password '${passwords.postgres}';
    grant anon, authenticated, service_role, pg_read_all_data, pg_signal_backend to postgres;
    alter role supabase_auth_admin with login noinherit createrole noreplication
      password '${passwords.authAdmin}';
    alter role anon set statement_timeout = '3s';
    alter role authenticated set statement_timeout = '8s';
    alter role authenticator set statement_timeout = '8s';
    alter role authenticator set lock_timeout = '8s';`;
}

/** Per database; idempotent, so a reused data directory keeps working. */
const DATABASE_SQL = `
  -- Supabase databases run in UTC; timestamptz renders with +00:00 whatever the host's TZ. The
  -- project's database belongs to postgres (and with it schema public, owned by pg_database_owner).
  do $$
  begin
    execute format('alter database %I set timezone to %L', current_database(), 'UTC');
    execute format('alter database %I owner to postgres', current_database());
  end
  $$;

  create schema if not exists auth;
  create schema if not exists extensions;
  grant usage on schema auth, extensions to anon, authenticated, service_role;
  grant all on schema auth, extensions to postgres;

  -- Supabase's definitions: the legacy per-claim setting first, then request.jwt.claims.
  create or replace function auth.uid() returns uuid language sql stable as $$
    select coalesce(
      nullif(current_setting('request.jwt.claim.sub', true), ''),
      (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
    )::uuid
  $$;
  create or replace function auth.role() returns text language sql stable as $$
    select coalesce(
      nullif(current_setting('request.jwt.claim.role', true), ''),
      (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
    )::text
  $$;
  create or replace function auth.email() returns text language sql stable as $$
    select coalesce(
      nullif(current_setting('request.jwt.claim.email', true), ''),
      (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'email')
    )::text
  $$;
  create or replace function auth.jwt() returns jsonb language sql stable as $$
    select coalesce(
      nullif(current_setting('request.jwt.claim', true), ''),
      nullif(current_setting('request.jwt.claims', true), '')
    )::jsonb
  $$;
  grant execute on function auth.uid(), auth.role(), auth.email(), auth.jwt() to anon, authenticated, service_role;

  ${AUTH_SCHEMA_SQL}

  grant all on all tables in schema auth to postgres;
  grant all on all routines in schema auth to postgres;

  -- Supabase's initial schema ran these as postgres (then a superuser): what postgres creates in
  -- public is granted to every API role. The superuser's own objects likewise.
  grant usage on schema public to postgres, anon, authenticated, service_role;
  alter default privileges for role postgres in schema public
    grant all on tables to postgres, anon, authenticated, service_role;
  alter default privileges for role postgres in schema public
    grant all on functions to postgres, anon, authenticated, service_role;
  alter default privileges for role postgres in schema public
    grant all on sequences to postgres, anon, authenticated, service_role;
  alter default privileges in schema public grant all on tables to postgres, anon, authenticated, service_role;
  alter default privileges in schema public grant all on functions to postgres, anon, authenticated, service_role;
  alter default privileges in schema public grant all on sequences to postgres, anon, authenticated, service_role;

  -- Like Supabase's pgrst_ddl_watch: any DDL asks the gateway to reload its schema cache.
  create or replace function extensions.pgrst_ddl_watch() returns event_trigger language plpgsql as $$
  begin
    perform pg_notify('pgrst', 'reload schema');
  end
  $$;
  do $$
  begin
    if not exists (select from pg_event_trigger where evtname = 'pgrst_ddl_watch') then
      create event trigger pgrst_ddl_watch on ddl_command_end execute function extensions.pgrst_ddl_watch();
    end if;
    if not exists (select from pg_event_trigger where evtname = 'pgrst_drop_watch') then
      create event trigger pgrst_drop_watch on sql_drop execute function extensions.pgrst_ddl_watch();
    end if;
  end
  $$;`;

export interface ShapePasswords {
  /** The gateway's login. */
  readonly authenticator: string;
  /** The demoted `postgres` login that runs the migrations. */
  readonly postgres: string;
  /** `supabase_auth_admin`, the Auth server's login, owner of Auth's tables. */
  readonly authAdmin: string;
}

/**
 * Creates Supabase's roles (in the cluster reached through `maintenanceUrl`)
 * and the per-database objects (in `databaseUrl`). Both URLs are the superuser's, which must
 * not be `postgres`: that role is the project's demoted user here.
 */
export async function applySupabaseShape(
  maintenanceUrl: string,
  databaseUrl: string,
  passwords: ShapePasswords,
): Promise<void> {
  if (!Object.values(passwords).every((password) => /^[0-9a-f]{16,}$/.test(password))) {
    throw new Error("[testkit] the shape's passwords must be hex strings");
  }
  const maintenance = postgres(maintenanceUrl, { max: 1, onnotice: () => {} });
  try {
    const [me] = await maintenance<{ user: string }[]>`select current_user as user`;
    if (me?.user === "postgres") {
      throw new Error(
        `[testkit] a local Supabase needs a cluster whose superuser is not "postgres" (a hosted project demotes postgres): start it with startPostgres({ superuser: "${SUPABASE_SUPERUSER}" })`,
      );
    }
    await maintenance.begin(async (tx) => {
      await tx`select pg_advisory_xact_lock(hashtext('cv_local_supabase_roles'))`;
      await tx.unsafe(rolesSql(passwords));
    });
  } finally {
    await maintenance.end();
  }
  const database = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  try {
    await database.begin((tx) => tx.unsafe(DATABASE_SQL));
  } finally {
    await database.end();
  }
}
