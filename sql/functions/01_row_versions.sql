-- public.cv_touch_row() runs BEFORE INSERT OR UPDATE on every EHR table (its triggers: 0002; 0005
-- fires them only outside a sync apply). created_at, updated_at, version and base_version are kept
-- by the database, so every writer (app, dashboard, psql) produces the metadata the sync engine
-- relies on:
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

CREATE OR REPLACE FUNCTION public.cv_touch_row() RETURNS trigger
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

-- A trigger's function: no one's to call. Named roles too: Supabase's default privileges hand every
-- new function in public to its API roles.
REVOKE ALL ON FUNCTION public.cv_touch_row() FROM PUBLIC;
DO $grants$
DECLARE
  v_role text;
BEGIN
  FOR v_role IN SELECT r.rolname FROM pg_roles r WHERE r.rolname IN ('anon', 'authenticated', 'service_role') LOOP
    EXECUTE format('REVOKE ALL ON FUNCTION public.cv_touch_row() FROM %I', v_role);
  END LOOP;
END
$grants$;
