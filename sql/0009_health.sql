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
