-- Generated from sql/0020_sign_in_buckets.sql by `npm run supabase:migrations`: do not edit (edit sql/0020_sign_in_buckets.sql and run that again).
-- 0020 Failed offline sign-ins of an e-mail that has no verifier here, counted as an enrolled
-- person's are (clinic server only; the cloud has no offline sign-in).
--
-- Before, only an enrolled person's failures were counted (0011): after `lockout_attempts` wrong
-- passwords an enrolled e-mail answered 'locked' while an unknown one answered 'wrong' forever, so
-- any PC login could tell who has a verifier here. sql/functions/12_sign_in.sql counts an unknown
-- e-mail in one of the 256 buckets below, chosen by a keyed hash of the e-mail (the clinic's
-- signing key: nobody can work out offline which e-mails share a bucket). A bucket holds one
-- e-mail's count at a time, tagged with another part of that hash: a different e-mail in the same
-- bucket starts from zero and takes it over. Kept per guessed e-mail, the counts would let a
-- guesser grow the catalog without end; shared by all the e-mails of a bucket, an e-mail nobody
-- tried yet would answer 'locked' once guesses of others locked its bucket, where an enrolled one
-- answers 'wrong' (lock every bucket, then one attempt tells each e-mail apart).
--
-- The counts are sequences for the reason 0011 gives (setval() is not undone by a rollback); the
-- rows are only locked, so that concurrent attempts of one bucket are counted one after another.

DO $buckets$
BEGIN
  IF to_regclass('cv_auth.signing_key') IS NULL THEN
    RETURN;
  END IF;

  CREATE TABLE cv_auth.sign_in_buckets (
    bucket smallint PRIMARY KEY CONSTRAINT sign_in_buckets_bucket CHECK (bucket BETWEEN 0 AND 255)
  );
  INSERT INTO cv_auth.sign_in_buckets (bucket) SELECT generate_series(0, 255);
  REVOKE ALL ON TABLE cv_auth.sign_in_buckets FROM PUBLIC;

  -- Its value: the tag times 2^33 plus the count, or the lockout's end, exactly as in a person's
  -- sequence (0011's cv_auth.attempts_sequence).
  FOR v_bucket IN 0..255 LOOP
    EXECUTE format('CREATE SEQUENCE cv_auth.%I AS bigint MINVALUE 0 START 0', 'sign_in_bucket_' || v_bucket);
    EXECUTE format('REVOKE ALL ON SEQUENCE cv_auth.%I FROM PUBLIC', 'sign_in_bucket_' || v_bucket);
  END LOOP;
END
$buckets$;

-- What `centrovision-sync cloud migrate` records: the project counts as having sql/0020_sign_in_buckets.sql.
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
insert into cv_meta.schema_migrations (name, checksum) values ('0020_sign_in_buckets.sql', 'cf6a2de9ccf7bf6511523b9ab8c41a4deb72896e317b804f4a402659dd2c9ce8') on conflict (name) do nothing;
