-- Generated from sql/0014_util_schema.sql by `npm run supabase:migrations`: do not edit (edit sql/0014_util_schema.sql and run that again).
-- 0014 Schema cv_util: helpers shared by functions that run as different roles. cv_client_apply
-- (0010) runs as the signed-in person (SECURITY INVOKER, so row-level security decides each row),
-- and no role has USAGE on cv_sync: a helper it shares with the sync's apply (which runs as the
-- owner) cannot live there. What is here runs as its caller and reads nothing but the catalog;
-- USAGE goes to the roles that call such a function, and each function's EXECUTE is granted where
-- it is defined (sql/functions/).

CREATE SCHEMA cv_util;
GRANT USAGE ON SCHEMA cv_util TO authenticated;

-- What `centrovision-sync cloud migrate` records: the project counts as having sql/0014_util_schema.sql.
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
insert into cv_meta.schema_migrations (name, checksum) values ('0014_util_schema.sql', '929e42ebe71bb6b51747912416c58655a7405535af9387f676eb9b4d544dc1d2') on conflict (name) do nothing;
