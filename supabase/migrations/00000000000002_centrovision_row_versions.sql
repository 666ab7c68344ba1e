-- Generated from sql/0002_row_versions.sql by `npm run supabase:migrations`: do not edit (edit sql/0002_row_versions.sql and run that again).
-- 0002 Row versions: created_at, updated_at, version and base_version are kept by the database,
-- so every writer (app, dashboard, psql) produces the metadata the sync engine relies on.
--
-- cv_touch_row() runs BEFORE INSERT OR UPDATE on every EHR table:
--
--   INSERT  created_at := updated_at := now(): the server's clock, not the writer's (a row
--           stamped in the future would win every last-write-wins decision);
--           created_by := updated_by := auth.uid(): the verified person writing (the cloud's
--           token, the clinic server's clinic session), NULL without one; never the writer's say;
--           keeps a caller-supplied version (a writer may choose it, so a retried write is
--           recognisable), else the column default; base_version stays NULL unless supplied.
--   UPDATE  created_at := OLD.created_at, created_by := OLD.created_by (a row's birth never moves),
--           updated_at := now(), updated_by := auth.uid(),
--           base_version := OLD.version (the version this edit replaced),
--           version := gen_random_uuid(), unless the caller supplied a version different from
--           OLD.version. An UPDATE that does not mention version carries OLD.version, so keeping
--           an equal one would leave two different contents under one version id.
--
-- Replicated rows: the sync engine applies rows from another node verbatim (their versions and
-- timestamps are the other node's facts); stamping them again would make every replicated row
-- look like a new local edit and echo back forever. 0005 therefore fires this trigger only
-- outside a sync apply, and refuses a write that claims to be one without being it.

CREATE FUNCTION public.cv_touch_row() RETURNS trigger
  LANGUAGE plpgsql
  -- Fixed search_path: the function must not resolve names through a caller's schemas.
  SET search_path = ''
AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    NEW.created_at := now();
    NEW.updated_at := now();
    NEW.created_by := auth.uid();
    NEW.updated_by := NEW.created_by;
    -- An explicit NULL would otherwise fail NOT NULL instead of taking the default.
    NEW.version := coalesce(NEW.version, gen_random_uuid());
  ELSE
    NEW.created_at := OLD.created_at;
    NEW.updated_at := now();
    NEW.created_by := OLD.created_by;
    NEW.updated_by := auth.uid();
    NEW.base_version := OLD.version;
    IF NEW.version IS NULL OR NEW.version = OLD.version THEN
      NEW.version := gen_random_uuid();
    END IF;
  END IF;
  RETURN NEW;
END
$$;

CREATE TRIGGER cv_touch_row BEFORE INSERT OR UPDATE ON public.branches
  FOR EACH ROW EXECUTE FUNCTION public.cv_touch_row();
CREATE TRIGGER cv_touch_row BEFORE INSERT OR UPDATE ON public.rooms
  FOR EACH ROW EXECUTE FUNCTION public.cv_touch_row();
CREATE TRIGGER cv_touch_row BEFORE INSERT OR UPDATE ON public.profiles
  FOR EACH ROW EXECUTE FUNCTION public.cv_touch_row();
CREATE TRIGGER cv_touch_row BEFORE INSERT OR UPDATE ON public.user_roles
  FOR EACH ROW EXECUTE FUNCTION public.cv_touch_row();
CREATE TRIGGER cv_touch_row BEFORE INSERT OR UPDATE ON public.user_branches
  FOR EACH ROW EXECUTE FUNCTION public.cv_touch_row();
CREATE TRIGGER cv_touch_row BEFORE INSERT OR UPDATE ON public.patients
  FOR EACH ROW EXECUTE FUNCTION public.cv_touch_row();
CREATE TRIGGER cv_touch_row BEFORE INSERT OR UPDATE ON public.appointments
  FOR EACH ROW EXECUTE FUNCTION public.cv_touch_row();
CREATE TRIGGER cv_touch_row BEFORE INSERT OR UPDATE ON public.encounters
  FOR EACH ROW EXECUTE FUNCTION public.cv_touch_row();
CREATE TRIGGER cv_touch_row BEFORE INSERT OR UPDATE ON public.exam_eye
  FOR EACH ROW EXECUTE FUNCTION public.cv_touch_row();
CREATE TRIGGER cv_touch_row BEFORE INSERT OR UPDATE ON public.diagnoses
  FOR EACH ROW EXECUTE FUNCTION public.cv_touch_row();

-- What `centrovision-sync cloud migrate` records: the project counts as having sql/0002_row_versions.sql.
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
insert into cv_meta.schema_migrations (name, checksum) values ('0002_row_versions.sql', '468dde7fd24e5ccf0c671a3c5c9657674630efb7f90d6c3491656dc3197a53c5') on conflict (name) do nothing;
