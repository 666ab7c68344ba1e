-- 0017 The schema fingerprint is kept, not computed on every call. Every pull and initial-sync
-- page sent it, and computing it reads the catalog for each column of each synced table (and
-- pg_enum for each): an idle clinic polling once a second cost the cloud thousands of catalog
-- scans a minute for an answer that changes only when the schema does.
--
-- `cv_sync.fingerprint()`, what a node says of itself, returns the kept copy while no migration
-- was recorded since it was computed (whichever route applied it: both record themselves in
-- cv_meta.schema_migrations), and computes it otherwise. The copy is refreshed by any change to
-- cv_sync.synced_tables (the policies) and by DDL, where the migrating role may create an event
-- trigger (a superuser on the clinic server; `postgres` on hosted Supabase, through supautils).
-- Where it may not, `cv_sync_node()` (which the sync engine calls every cycle on the clinic server
-- and at least once a minute on the cloud) computes it afresh and keeps it, so DDL run by hand,
-- outside a migration, is taken up by its next call; where it may, `cv_sync_node()` reads no
-- catalog either unless a migration was recorded since. The receiving side of an apply still computes its own from
-- the catalog (only when the batch holds changes), so a node never applies rows its own schema
-- does not match what it was told.

CREATE TABLE cv_sync.schema_fingerprint (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  fingerprint jsonb NOT NULL,
  -- The migrations recorded when it was computed: how many, and when the last one was applied.
  migrations text NOT NULL,
  computed_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- The same fingerprint as 0006's, in one pass over pg_enum instead of one per column.
CREATE FUNCTION cv_sync.compute_fingerprint() RETURNS jsonb
  LANGUAGE sql STABLE
  SET search_path = ''
  RETURN (
    WITH labels AS (
      SELECT e.enumtypid, string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder) AS list
      FROM pg_catalog.pg_enum e GROUP BY e.enumtypid
    )
    SELECT jsonb_object_agg(s.table_name, (
      SELECT md5(string_agg(
          a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
            || coalesce(' (' || l.list || ')', ''),
          ', ' ORDER BY a.attname) || '; policy ' || s.policy)
      FROM pg_catalog.pg_attribute a
      LEFT JOIN labels l ON l.enumtypid = a.atttypid
      WHERE a.attrelid = to_regclass(format('public.%I', s.table_name)) AND a.attnum > 0 AND NOT a.attisdropped))
    FROM cv_sync.synced_tables s
  );

-- Which migrations the database has recorded, as the kept fingerprint notes them.
CREATE FUNCTION cv_sync.migrations_stamp() RETURNS text
  LANGUAGE sql STABLE
  SET search_path = ''
  RETURN (SELECT count(*) || ' ' || coalesce(max(m.applied_at)::text, '') FROM cv_meta.schema_migrations m);

-- The kept copy while no migration was recorded since it was computed; NULL otherwise.
CREATE FUNCTION cv_sync.kept_fingerprint() RETURNS jsonb
  LANGUAGE sql STABLE
  SET search_path = ''
  RETURN (SELECT f.fingerprint FROM cv_sync.schema_fingerprint f WHERE f.migrations = cv_sync.migrations_stamp());

CREATE OR REPLACE FUNCTION cv_sync.fingerprint() RETURNS jsonb
  LANGUAGE sql STABLE
  SET search_path = ''
  RETURN coalesce(cv_sync.kept_fingerprint(), cv_sync.compute_fingerprint());

-- Computes the fingerprint and keeps it (written only when it or the migrations changed).
CREATE FUNCTION cv_sync.refresh_fingerprint() RETURNS jsonb
  LANGUAGE plpgsql
  SET search_path = ''
AS $$
DECLARE
  v_fingerprint jsonb := cv_sync.compute_fingerprint();
  v_migrations text := cv_sync.migrations_stamp();
BEGIN
  INSERT INTO cv_sync.schema_fingerprint AS f (fingerprint, migrations) VALUES (v_fingerprint, v_migrations)
  ON CONFLICT (singleton) DO UPDATE SET fingerprint = excluded.fingerprint, migrations = excluded.migrations,
    computed_at = excluded.computed_at
  WHERE f.fingerprint IS DISTINCT FROM excluded.fingerprint OR f.migrations IS DISTINCT FROM excluded.migrations;
  RETURN v_fingerprint;
END
$$;

-- Whether DDL keeps the copy fresh by itself: the event trigger below exists here and is enabled.
CREATE FUNCTION cv_sync.fingerprint_maintained() RETURNS boolean
  LANGUAGE sql STABLE
  SET search_path = ''
  RETURN EXISTS (SELECT FROM pg_catalog.pg_event_trigger t WHERE t.evtname = 'cv_sync_fingerprint' AND t.evtenabled <> 'D');

-- 0006's, with the fingerprint computed afresh and kept (VOLATILE now, since it may write it)
-- unless DDL keeps it fresh and no migration was recorded since it was computed,
-- and the scope the caller holds (`scope`: the branches of a clinic's node credential, with
-- cv_sync.everywhere(); null for the service key, which holds everything): the cloud's wake-ups
-- name the scopes they concern (sql/functions/07_wakeups.sql), and a clinic ignores the others.
CREATE OR REPLACE FUNCTION public.cv_sync_node() RETURNS jsonb
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER
  SET search_path = ''
AS $$
BEGIN
  PERFORM cv_sync.require_node(NULL);
  RETURN (
    SELECT jsonb_build_object(
      'node_id', n.node_id, 'node_name', n.node_name, 'epoch', n.epoch,
      'fingerprint', coalesce(
        CASE WHEN cv_sync.fingerprint_maintained() THEN cv_sync.kept_fingerprint() END,
        cv_sync.refresh_fingerprint()),
      'now', clock_timestamp(), 'max_txid', pg_snapshot_xmax(pg_current_snapshot())::text::bigint,
      'open_conflicts', (SELECT count(*) FROM cv_sync.conflicts k WHERE k.status = 'open'),
      'scope', cv_sync.node_scope(),
      'quarantined', (SELECT count(*) FROM cv_sync.quarantine q
        WHERE NOT cv_sync.called_by_node()
          OR q.source = (SELECT c.node_id FROM cv_sync.clinic_nodes c WHERE c.user_id = auth.uid())))
    FROM cv_sync.node n
  );
END
$$;

-- 0008's, with the receiving node's fingerprint computed from the catalog, and only for a batch
-- that holds changes (an idle cursor save checks nothing).
CREATE OR REPLACE FUNCTION cv_sync.check_fingerprint(p_source jsonb, p_tables text[]) RETURNS void
  LANGUAGE plpgsql STABLE
  SET search_path = ''
AS $$
DECLARE
  v_local jsonb;
  v_drifted text;
BEGIN
  IF coalesce(cardinality(p_tables), 0) = 0 THEN
    RETURN;
  END IF;
  v_local := cv_sync.compute_fingerprint();
  SELECT string_agg(t, ', ' ORDER BY t) INTO v_drifted
  FROM unnest(p_tables) t
  WHERE v_local ->> t IS DISTINCT FROM p_source -> 'fingerprint' ->> t;
  IF v_drifted IS NOT NULL THEN
    RAISE EXCEPTION 'schema drift: table(s) % differ between node % and this node; nothing was applied', v_drifted,
      coalesce(p_source ->> 'node_name', p_source ->> 'node_id')
      USING ERRCODE = 'CV002',
        HINT = 'apply the same sql/ migrations (and cv_sync.synced_tables policies) on both nodes, then sync again';
  END IF;
END
$$;

-- A policy changed in cv_sync.synced_tables is part of the fingerprint.
CREATE FUNCTION cv_sync.synced_tables_changed() RETURNS trigger
  LANGUAGE plpgsql
  SET search_path = ''
AS $$
BEGIN
  PERFORM cv_sync.refresh_fingerprint();
  RETURN NULL;
END
$$;

CREATE TRIGGER cv_sync_fingerprint AFTER INSERT OR UPDATE OR DELETE ON cv_sync.synced_tables
  FOR EACH STATEMENT EXECUTE FUNCTION cv_sync.synced_tables_changed();

-- DDL by anyone: the copy is computed again. Never fails the DDL: if the fingerprint cannot be
-- computed now (a synced table mid-change), the copy is dropped and computed when next asked.
CREATE FUNCTION cv_sync.ddl_changed() RETURNS event_trigger
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = ''
AS $$
BEGIN
  PERFORM cv_sync.refresh_fingerprint();
EXCEPTION WHEN OTHERS THEN
  DELETE FROM cv_sync.schema_fingerprint f WHERE f.singleton;
END
$$;
REVOKE ALL ON FUNCTION cv_sync.ddl_changed() FROM PUBLIC;

DO $$
BEGIN
  CREATE EVENT TRIGGER cv_sync_fingerprint ON ddl_command_end EXECUTE FUNCTION cv_sync.ddl_changed();
EXCEPTION WHEN insufficient_privilege THEN
  RAISE NOTICE 'no event trigger (% may not create one): DDL run by hand outside a migration is taken up by the next cv_sync_node()', current_user;
END
$$;

SELECT cv_sync.refresh_fingerprint();

CALL cv_sync.grant_rpc();
