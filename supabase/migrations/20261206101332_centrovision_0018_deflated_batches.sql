-- Generated from sql/0018_deflated_batches.sql by `npm run supabase:migrations`: do not edit (edit sql/0018_deflated_batches.sql and run that again).
-- 0018 pgcrypto on both tiers, for the deflated batch of sql/functions/09_deflated.sql: a clinic
-- server's upload is compressed, and in a Supabase database the only decompressor is pgcrypto's
-- OpenPGP reader (zlib). Supabase has pgcrypto already (schema `extensions`), and 0011 created it
-- on the clinic server; anywhere else it goes into a schema of its own that no API role may use,
-- as 0011 does it.
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_extension e WHERE e.extname = 'pgcrypto') THEN
    CREATE SCHEMA IF NOT EXISTS cv_crypto;
    REVOKE ALL ON SCHEMA cv_crypto FROM PUBLIC;
    CREATE EXTENSION pgcrypto WITH SCHEMA cv_crypto;
  END IF;
END
$$;

-- What `centrovision-sync cloud migrate` records: the project counts as having sql/0018_deflated_batches.sql.
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
insert into cv_meta.schema_migrations (name, checksum) values ('0018_deflated_batches.sql', '3a4dab49496d60a38bd63975468e12953143d1b91dcc4086a8e44bd8e093afba') on conflict (name) do nothing;
