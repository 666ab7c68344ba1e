-- Generated from sql/0009_health.sql by `npm run supabase:migrations`: do not edit (edit sql/0009_health.sql and run that again).
-- 0009 Health probe: cv_health() proves the database itself answers, not just some HTTP server.
--
-- Called by @centrovision/adapter-supabase as `GET /rest/v1/rpc/cv_health` with only the API key
-- (never the user's session, whose auth lock can hang). It exercises DNS, TLS, the API gateway,
-- PostgREST, its pool and PostgreSQL, returns ~60 bytes, and the `ok: true` body lets the caller
-- tell PostgREST from a captive portal or proxy that answers 200 with HTML.
--
-- STABLE so PostgREST may run it in a read-only transaction (GET). It reads no table, so it needs
-- no grants beyond EXECUTE and leaks nothing to the anon key.

CREATE FUNCTION public.cv_health() RETURNS jsonb
  LANGUAGE sql STABLE
  SET search_path = ''
AS $$
  SELECT jsonb_build_object('ok', true, 'now', now())
$$;

-- Supabase's API roles exist only in the cloud (and its local stand-in); the clinic server has
-- none, and the function is then simply there for a psql health check.
DO $health$
BEGIN
  IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'anon') THEN
    GRANT EXECUTE ON FUNCTION public.cv_health() TO anon;
  END IF;
  IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'authenticated') THEN
    GRANT EXECUTE ON FUNCTION public.cv_health() TO authenticated;
  END IF;
END
$health$;

-- What `centrovision-sync cloud migrate` records: the project counts as having sql/0009_health.sql.
  create schema if not exists cv_meta;
  revoke all on schema cv_meta from public;
  do $cv_meta$
  declare
    v_role text;
  begin
    if to_regclass('public.cv_schema_migrations') is not null and to_regclass('cv_meta.schema_migrations') is null then
      alter table public.cv_schema_migrations set schema cv_meta;
      alter table cv_meta.cv_schema_migrations rename to schema_migrations;
      for v_role in select rolname from pg_roles where rolname in ('anon', 'authenticated', 'service_role') loop
        execute format('revoke all on cv_meta.schema_migrations from %I', v_role);
      end loop;
    end if;
  end
  $cv_meta$;
  create table if not exists cv_meta.schema_migrations (
    name text primary key,
    checksum text not null,
    applied_at timestamptz not null default now()
  );
insert into cv_meta.schema_migrations (name, checksum) values ('0009_health.sql', 'd505a50c89376048445cd253d57ea15793f9b50146087afb8bd448b515fd6995') on conflict (name) do nothing;
