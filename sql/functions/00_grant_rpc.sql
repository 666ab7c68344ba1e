-- Permissions, run at the end of every functions file (0005's cv_sync.grant_rpc, the current
-- definition): PUBLIC loses EXECUTE on every cv_sync helper and public.cv_sync_* function;
-- centrovision_sync and (on Supabase) service_role get the RPC functions, and on the cloud a
-- clinic server's node credential (authenticated, checked inside) those a clinic server calls,
-- cv_sync_apply_deflated (09_deflated.sql) among them. First in name order, so that every later
-- file's CALL keeps every grant, and a function a file drops and creates again gets its own back.
CREATE OR REPLACE PROCEDURE cv_sync.grant_rpc()
  LANGUAGE plpgsql
  SET search_path = ''
AS $$
DECLARE
  v_function regprocedure;
  v_role text;
BEGIN
  EXECUTE 'REVOKE ALL ON ALL FUNCTIONS IN SCHEMA cv_sync FROM PUBLIC';
  EXECUTE 'REVOKE ALL ON ALL PROCEDURES IN SCHEMA cv_sync FROM PUBLIC';
  FOR v_function IN
    SELECT p.oid::regprocedure FROM pg_proc p
    WHERE p.pronamespace = 'public'::regnamespace AND p.proname LIKE 'cv\_sync\_%'
  LOOP
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', v_function);
    -- Registering nodes is the cloud administrator's (the service key's), no clinic daemon's.
    IF v_function::text !~ '^(public\.)?cv_sync_register_node\(' THEN
      EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO centrovision_sync', v_function);
    END IF;
    FOR v_role IN SELECT r.rolname FROM pg_roles r WHERE r.rolname IN ('anon', 'authenticated') LOOP
      EXECUTE format('REVOKE ALL ON FUNCTION %s FROM %I', v_function, v_role);
    END LOOP;
    IF EXISTS (SELECT FROM pg_roles r WHERE r.rolname = 'service_role') THEN
      EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO service_role', v_function);
      -- On the cloud (no clinic signing key, 0003), a clinic server's node credential
      -- (cv_sync.require_node checks it inside): what the daemon calls there, the purge included
      -- (within the floor cv_sync_purge sets for it). Not the cloud's own administration (init,
      -- conflicts, registering nodes): the service key's. Nor cv_sync_apply_snapshot: a clinic
      -- server's push replays its log, never copies tables into the cloud, and a copied row's
      -- HLC names any origin (a node's rows through it could pass as another node's edits).
      IF to_regclass('cv_auth.signing_key') IS NULL
        AND v_function::text ~ '^(public\.)?cv_sync_(node|pull|cursor|ack|pending|snapshot|apply|apply_deflated|reset_peer|purge)\(' THEN
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO authenticated', v_function);
      END IF;
    END IF;
  END LOOP;
END
$$;
