/**
 * Gives a database Supabase's shape before any migration runs: its API roles,
 * the `auth` schema with `auth.uid()/role()/email()/jwt()`, default grants,
 * and the DDL watch that tells the gateway to reload its schema cache.
 */
import postgres from "postgres";

/** Roles are cluster-wide: created once, serialised by an advisory lock in the maintenance database. */
function rolesSql(authenticatorPassword: string): string {
  // DDL takes no parameters; the password is our own hex string, checked by the caller.
  return `
    do $$
    begin
      if not exists (select from pg_roles where rolname = 'anon') then
        create role anon nologin noinherit;
      end if;
      if not exists (select from pg_roles where rolname = 'authenticated') then
        create role authenticated nologin noinherit;
      end if;
      if not exists (select from pg_roles where rolname = 'service_role') then
        create role service_role nologin noinherit bypassrls;
      end if;
      if not exists (select from pg_roles where rolname = 'authenticator') then
        create role authenticator login noinherit;
      end if;
    end
    $$;
    alter role authenticator with login noinherit password '${authenticatorPassword}';
    grant anon, authenticated, service_role to authenticator;`;
}

/** Per database; idempotent, so a reused data directory keeps working. */
const DATABASE_SQL = `
  -- Supabase databases run in UTC; timestamptz renders with +00:00 whatever the host's TZ.
  do $$
  begin
    execute format('alter database %I set timezone to %L', current_database(), 'UTC');
  end
  $$;

  create schema if not exists auth;
  create schema if not exists extensions;
  grant usage on schema auth, extensions to anon, authenticated, service_role;

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

  -- The part of Supabase Auth's table that application schemas reference (foreign keys to users).
  create table if not exists auth.users (
    id uuid primary key,
    email text,
    raw_user_meta_data jsonb not null default '{}',
    created_at timestamptz not null default now()
  );

  grant usage on schema public to anon, authenticated, service_role;
  alter default privileges in schema public grant all on tables to anon, authenticated, service_role;
  alter default privileges in schema public grant all on functions to anon, authenticated, service_role;
  alter default privileges in schema public grant all on sequences to anon, authenticated, service_role;

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

/**
 * Creates Supabase's roles (in the cluster reached through `maintenanceUrl`)
 * and the per-database objects (in `databaseUrl`). Both URLs are superuser.
 */
export async function applySupabaseShape(
  maintenanceUrl: string,
  databaseUrl: string,
  authenticatorPassword: string,
): Promise<void> {
  if (!/^[0-9a-f]{16,}$/.test(authenticatorPassword)) {
    throw new Error("[testkit] the authenticator password must be a hex string");
  }
  const maintenance = postgres(maintenanceUrl, { max: 1, onnotice: () => {} });
  try {
    await maintenance.begin(async (tx) => {
      await tx`select pg_advisory_xact_lock(hashtext('cv_local_supabase_roles'))`;
      await tx.unsafe(rolesSql(authenticatorPassword));
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
