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
