-- Generated from sql/0003_roles.sql by `npm run supabase:migrations`: do not edit (edit sql/0003_roles.sql and run that again).
-- 0003 Least-privilege roles. Login users are created by the deployment and granted one of these
-- group roles; nothing logs in as them directly (NOLOGIN).
--
--   centrovision_app   what the desktop app needs: read and write EHR rows, nothing else.
--   centrovision_sync  what the sync daemon needs: the same rows; the sync migration grants it
--                      the change log, cursors and its functions.
--
-- Neither role gets TRUNCATE, REFERENCES or TRIGGER, any DDL, or tables added later by default:
-- a stolen app password can corrupt rows one statement at a time but cannot drop or empty a table.
--
-- Roles are cluster-wide while migrations run per database, so creating them must succeed when
-- another database (or a concurrent test) already created them: no IF NOT EXISTS exists for roles,
-- and a check-then-create races, hence the exception handlers.

DO $roles$
BEGIN
  BEGIN
    CREATE ROLE centrovision_app NOLOGIN;
  EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
  END;
  BEGIN
    CREATE ROLE centrovision_sync NOLOGIN;
  EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
  END;
END
$roles$;

-- PostgreSQL 15+ already denies PUBLIC CREATE on schema public; older clusters and restored dumps
-- may not. Without it any login could plant a function that shadows ours.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

GRANT USAGE ON SCHEMA public TO centrovision_app, centrovision_sync;

GRANT SELECT, INSERT, UPDATE, DELETE ON
  public.branches,
  public.rooms,
  public.profiles,
  public.user_roles,
  public.user_branches,
  public.patients,
  public.appointments,
  public.encounters,
  public.exam_eye,
  public.diagnoses
TO centrovision_app, centrovision_sync;

-- What `centrovision-sync cloud migrate` records: the project counts as having sql/0003_roles.sql.
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
insert into cv_meta.schema_migrations (name, checksum) values ('0003_roles.sql', 'b4adc3e8e9caaf2c0dcd6c4b77fae8316e3a6fb2ad3c6790678e65b1e3e3c726') on conflict (name) do nothing;
