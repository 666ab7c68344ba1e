-- 0016 Wake-ups from the cloud. A clinic server's daemon polls the cloud every interval; where the
-- cloud is a Supabase project (it has Realtime's `realtime` schema), every statement that adds to
-- the cloud's change log also broadcasts one message on the private Realtime topic `cv_sync`, so
-- the daemons subscribed there start their next cycle at once. Polling stays: a lost wake-up
-- delays a change by at most the interval, never more.
--
-- The message names no row and no table: only the nodes the new entries came from (`origins`), so
-- a clinic server can ignore the echo of its own push. Only a clinic server's node credential may
-- hear it (app_metadata.centrovision_node, which only the service key sets; `centrovision-sync node
-- create`); a person's token is refused the channel. The service key bypasses the policy, as it
-- bypasses every other.
--
-- realtime.send takes a row in realtime.messages per statement (partitioned by day; Supabase drops
-- old partitions) and never fails the write: it turns its own errors into a warning. A clinic
-- server has no `realtime` schema: its capture notifies its daemon with NOTIFY instead
-- (sql/functions/05_capture.sql).

CREATE FUNCTION cv_sync.wake_nodes() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = ''
AS $$
BEGIN
  -- A statement trigger fires for an INSERT … SELECT that added nothing, too.
  IF NOT EXISTS (SELECT 1 FROM added) THEN
    RETURN NULL;
  END IF;
  PERFORM realtime.send(
    jsonb_build_object('origins', (SELECT jsonb_agg(DISTINCT a.origin) FROM added a)),
    'changes', 'cv_sync', true);
  RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION cv_sync.wake_nodes() FROM PUBLIC;

DO $realtime$
BEGIN
  IF to_regnamespace('realtime') IS NULL THEN
    RETURN;
  END IF;
  CREATE TRIGGER cv_sync_wake_nodes AFTER INSERT ON cv_sync.change_log
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION cv_sync.wake_nodes();
  CREATE POLICY cv_sync_nodes_hear_wakeups ON realtime.messages FOR SELECT TO authenticated
    USING (
      realtime.topic() = 'cv_sync' AND extension = 'broadcast'
      AND (auth.jwt() -> 'app_metadata' ->> 'centrovision_node') IS NOT NULL
    );
END
$realtime$;
