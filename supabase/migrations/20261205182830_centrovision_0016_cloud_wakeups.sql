-- Generated from sql/0016_cloud_wakeups.sql by `npm run supabase:migrations`: do not edit (edit sql/0016_cloud_wakeups.sql and run that again).
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

-- What `centrovision-sync cloud migrate` records: the project counts as having sql/0016_cloud_wakeups.sql.
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
insert into cv_meta.schema_migrations (name, checksum) values ('0016_cloud_wakeups.sql', '7221e5a65955b5ae8abd153be0f5a2e2f98bee01930c35e98548b2905aecc73f') on conflict (name) do nothing;
