-- Generated from sql/functions/ by `npm run supabase:migrations`: do not edit (edit those files and run that again).
-- The functions as they were when this file was written, applied after every migration before it.
-- A later functions file supersedes it; it stays because projects have applied its version.

-- sql/functions/00_grant_rpc.sql
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

-- sql/functions/01_row_versions.sql
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

-- sql/functions/02_update_columns.sql
-- cv_util.update_columns(table): the column list of an UPDATE that writes a whole row of
-- public.<table> from a record (`SET (list) = (SELECT list FROM jsonb_populate_record(...))`):
-- every column but id, quoted, in table order. One definition for both writers of whole rows, the
-- sync's verbatim apply (cv_sync.write_rows, as the owner) and a PC's writes (cv_client_apply, as
-- its person), so a column the two would treat differently cannot creep in. Runs as its caller and
-- reads only the catalog, which every role may read anyway.
CREATE OR REPLACE FUNCTION cv_util.update_columns(p_table text) RETURNS text
  LANGUAGE sql STABLE
  SET search_path = ''
  RETURN (
    SELECT pg_catalog.string_agg(pg_catalog.format('%I', a.attname), ', ' ORDER BY a.attnum)
    FROM pg_catalog.pg_attribute a
    WHERE a.attrelid = pg_catalog.format('public.%I', p_table)::pg_catalog.regclass
      AND a.attnum > 0 AND NOT a.attisdropped AND a.attname <> 'id'
  );

-- For cv_client_apply's person (0010); the owner's functions need no grant.
REVOKE ALL ON FUNCTION cv_util.update_columns(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cv_util.update_columns(text) TO authenticated;

-- sql/functions/03_sync_apply.sql
-- The sync's apply (0007, 0008, 0013; packages/sync-engine/PROTOCOL.md is the specification).

-- Refuses a batch whose rows would hold a unique key (p_constraint, p_detail) twice: the same
-- record, registered on each side under its own id (CV004).
CREATE OR REPLACE FUNCTION cv_sync.duplicate_record(p_table text, p_detail text, p_constraint text) RETURNS void
  LANGUAGE plpgsql
  SET search_path = ''
AS $$
BEGIN
  RAISE EXCEPTION 'cannot apply % rows: % (%); the same record exists twice under different ids', p_table, p_detail, p_constraint
    USING ERRCODE = 'CV004', HINT = 'merge or correct one of the two records on either side, then sync again';
END
$$;

-- Writes rows verbatim ('insert' or 'update'; their ids locked or absent). A missing parent that
-- this node deleted is restored (the delete loses to a row that still needs it); a parent never
-- seen is SQLSTATE 23503: it is in the source's log beyond this page (a child written by a
-- transaction with a lower id than its parent's), so the engine retries with a larger page.
-- A row absent when classified and present at the insert was written concurrently: its id's
-- unique violation is serialization_failure, and the retry classifies it again (plain inserts,
-- not ON CONFLICT's speculative ones: 9 of the 114 ms 4,000 new patients took). A unique
-- violation of another key (the same patient registered on both sides) is CV004: a person must
-- decide which record stays, the machine cannot.
CREATE OR REPLACE FUNCTION cv_sync.write_rows(p_table text, p_kind text, p_changes cv_sync.change[]) RETURNS void
  LANGUAGE plpgsql
  SET search_path = ''
AS $$
DECLARE
  v_columns text;
  v_constraint text;
  v_detail text;
BEGIN
  IF cardinality(p_changes) = 0 THEN
    RETURN;
  END IF;
  LOOP
    BEGIN
      IF p_kind = 'insert' THEN
        EXECUTE format(
          'INSERT INTO public.%1$I SELECT r.* FROM unnest($1) c, jsonb_populate_record(NULL::public.%1$I, c.row_data) r',
          p_table) USING p_changes;
      ELSE
        v_columns := cv_util.update_columns(p_table);
        EXECUTE format(
          'UPDATE public.%1$I x SET (%2$s) = (SELECT %2$s FROM jsonb_populate_record(NULL::public.%1$I, c.row_data)) '
          'FROM unnest($1) c WHERE x.id = c.row_id', p_table, v_columns) USING p_changes;
      END IF;
      RETURN;
    EXCEPTION
      WHEN foreign_key_violation THEN
        PERFORM cv_sync.restore_parents(p_table, p_changes);
      WHEN unique_violation THEN
        GET STACKED DIAGNOSTICS v_constraint = CONSTRAINT_NAME, v_detail = PG_EXCEPTION_DETAIL;
        IF p_kind = 'insert' AND EXISTS (SELECT FROM pg_catalog.pg_constraint k
          WHERE k.conrelid = format('public.%I', p_table)::regclass AND k.contype = 'p' AND k.conname = v_constraint)
        THEN
          RAISE EXCEPTION 'rows of % were written concurrently with this apply', p_table
            USING ERRCODE = 'serialization_failure', HINT = 'retry the batch';
        END IF;
        PERFORM cv_sync.duplicate_record(p_table, v_detail, v_constraint);
    END;
  END LOOP;
END
$$;

-- Sorts p_changes of p_table by what this node holds (0007's, its row and row_state looked up by
-- key for each change): inserts (absent here), updates (present), conflicts (with this node's
-- row) and the number skipped. Joined, the planner hashed the whole of row_state (every table's
-- entries) or of the table to meet a page of 2,000: 11 of classify's 15 ms on the bench's cloud
-- (36,000 entries), 7 of 13 on its clinic server (16,000 patients), and more as they grow; a
-- lookup per change costs the same whatever their size.
CREATE OR REPLACE FUNCTION cv_sync.classify(
  p_table text, p_changes cv_sync.change[], p_catchup boolean,
  OUT inserts cv_sync.change[], OUT updates cv_sync.change[], OUT conflicts jsonb, OUT skipped bigint
)
  LANGUAGE plpgsql
  SET search_path = ''
AS $$
BEGIN
  EXECUTE format(
    'SELECT count(*) FROM (SELECT FROM public.%I x WHERE x.id = ANY ($1) ORDER BY x.id FOR UPDATE) locked', p_table)
    USING ARRAY(SELECT c.row_id FROM unnest(p_changes) c);
  EXECUTE format($sql$
    WITH target AS (
      SELECT c, x.id IS NOT NULL AS present, s.deleted IS TRUE AS tombstone, to_jsonb(x) AS local_row,
        coalesce(x.version, s.version) AS local_version,
        coalesce(s.hlc, cv_sync.synthetic_hlc(x.updated_at, n.node_id)) AS local_hlc,
        coalesce(s.origin, n.node_id) AS local_origin
      FROM unnest($1) c
      CROSS JOIN cv_sync.node n
      -- OFFSET 0: a lookup per change, never a join the planner may hash.
      LEFT JOIN LATERAL (SELECT x.* FROM public.%1$I x WHERE x.id = c.row_id OFFSET 0) x ON true
      LEFT JOIN LATERAL (SELECT s.deleted, s.version, s.hlc, s.origin FROM cv_sync.row_state s
        WHERE s.table_name = %1$L AND s.row_id = c.row_id OFFSET 0) s ON true
    ), decided AS (
      SELECT t.*, CASE
        WHEN NOT t.present AND NOT t.tombstone THEN 'write'
        WHEN t.local_version = (t.c).version THEN 'skip'
        WHEN t.local_version = (t.c).base_version THEN 'write'
        WHEN (t.c).op = 'delete' AND NOT t.present THEN 'skip'
        WHEN (t.c).resolves IS NOT NULL AND EXISTS (
          SELECT FROM cv_sync.conflicts k
          WHERE k.id = (t.c).resolves AND t.local_version IN (k.local_version, k.remote_version)) THEN 'write'
        WHEN t.local_origin = (t.c).origin THEN
          CASE WHEN cv_sync.hlc_logical((t.c).hlc) > cv_sync.hlc_logical(t.local_hlc) THEN 'write' ELSE 'skip' END
        WHEN $2 AND t.local_hlc >= (t.c).hlc THEN 'skip'
        ELSE 'conflict' END AS decision
      FROM target t
    )
    SELECT coalesce(array_agg(d.c) FILTER (WHERE d.decision = 'write' AND NOT d.present), '{}'),
      coalesce(array_agg(d.c) FILTER (WHERE d.decision = 'write' AND d.present), '{}'),
      coalesce(jsonb_agg(jsonb_build_object('change', to_jsonb(d.c), 'local_row', d.local_row,
        'local_version', d.local_version, 'local_hlc', d.local_hlc, 'local_origin', d.local_origin))
        FILTER (WHERE d.decision = 'conflict'), '[]'),
      count(*) FILTER (WHERE d.decision = 'skip')
    FROM decided d
  $sql$, p_table) INTO inserts, updates, conflicts, skipped USING p_changes, p_catchup;
END
$$;

-- A row's scope: cv_sync.row_scope's rules (0005), as one query for the statement that calls it
-- to take in (a SQL function of one SELECT in its FROM, or in a subquery, is inlined: no call per
-- row). A batch's scopes are read this way: row_scope, a PL/pgSQL call per row, took 29-31 ms for
-- 2,000 patients where this took 20-22, both with the 11 it takes to read them. row_scope stays
-- for a single row (a capture's trigger, the check of each change a node credential sends):
-- there, this query would be planned again on each call. The two must agree: test/sql/scope-rules.test.ts compares them.
CREATE OR REPLACE FUNCTION cv_sync.scope_of(p_table text, p_row jsonb) RETURNS TABLE (scope uuid[])
  LANGUAGE sql STABLE
BEGIN ATOMIC
  SELECT CASE p_table
    WHEN 'branches' THEN ARRAY[cv_sync.everywhere()]
    WHEN 'rooms' THEN ARRAY[(p_row ->> 'branch_id')::uuid]
    WHEN 'user_branches' THEN ARRAY[(p_row ->> 'branch_id')::uuid]
    WHEN 'encounters' THEN ARRAY[(p_row ->> 'branch_id')::uuid]
    WHEN 'appointments' THEN ARRAY(SELECT (p_row ->> 'branch_id')::uuid
      UNION SELECT e.branch_id FROM public.encounters e WHERE e.appointment_id = (p_row ->> 'id')::uuid ORDER BY 1)
    WHEN 'patients' THEN ARRAY(SELECT (p_row ->> 'branch_id')::uuid
      UNION SELECT a.branch_id FROM public.appointments a WHERE a.patient_id = (p_row ->> 'id')::uuid
      UNION SELECT e.branch_id FROM public.encounters e WHERE e.patient_id = (p_row ->> 'id')::uuid ORDER BY 1)
    WHEN 'profiles' THEN ARRAY(SELECT ub.branch_id FROM public.user_branches ub WHERE ub.user_id = (p_row ->> 'id')::uuid
      UNION SELECT a.branch_id FROM public.appointments a WHERE a.doctor_id = (p_row ->> 'id')::uuid
      UNION SELECT e.branch_id FROM public.encounters e WHERE e.doctor_id = (p_row ->> 'id')::uuid ORDER BY 1)
    WHEN 'user_roles' THEN ARRAY(SELECT DISTINCT ub.branch_id FROM public.user_branches ub
      WHERE ub.user_id = (p_row ->> 'user_id')::uuid ORDER BY 1)
    ELSE ARRAY(SELECT e.branch_id FROM public.encounters e WHERE e.id = (p_row ->> 'encounter_id')::uuid)
  END;
END;

-- What a clinic may write a row within (0007's write_scope, read as scope_of is): a branch
-- itself, any other row its scope.
CREATE OR REPLACE FUNCTION cv_sync.write_scope_of(p_table text, p_row jsonb) RETURNS TABLE (scope uuid[])
  LANGUAGE sql STABLE
BEGIN ATOMIC
  SELECT CASE WHEN p_table = 'branches' THEN ARRAY[(p_row ->> 'id')::uuid]
    ELSE (SELECT s.scope FROM cv_sync.scope_of(p_table, p_row) s) END;
END;

-- 0007's, given the write scopes of the changed row (p_scope, for an upsert) and of the cloud's
-- row (p_current_scope): cv_sync.hold_refused reads them for a whole page with write_scope_of,
-- where write_scope and row_scope, called here for each row, took about two thirds of this
-- function's time. Why a clinic's node credential (holding p_held, NULL: every branch) may not
-- apply change p_change over the cloud's row p_current, or NULL when it may; p_mine: the
-- author's branches. A change without an author (one the clinic server's own machinery or owner
-- made: a merge, a restored parent, a reviewed resolution) is judged by the scope alone, its
-- created_by/updated_by included.
CREATE OR REPLACE FUNCTION cv_sync.refusal(p_change cv_sync.change, p_current jsonb, p_held uuid[], p_mine uuid[],
  p_scope uuid[], p_current_scope uuid[]) RETURNS text
  LANGUAGE plpgsql STABLE
  SET search_path = ''
AS $$
DECLARE
  v_user uuid;
  v_table text := p_change.table_name;
  v_allowed boolean;
BEGIN
  IF p_held IS NOT NULL AND NOT (
    (p_change.op <> 'upsert' OR coalesce(p_scope && p_held, false))
    AND (p_current IS NULL OR coalesce(p_current_scope && p_held, false)))
  THEN
    RETURN 'lies outside the branches of clinic';
  END IF;
  BEGIN
    v_user := (p_change.author ->> 'user')::uuid;
  EXCEPTION WHEN invalid_text_representation THEN
    RETURN 'names an author that is not a user id';
  END;
  IF v_user IS NULL THEN
    RETURN NULL;
  END IF;
  v_allowed := CASE
    WHEN p_change.op = 'delete' THEN p_current IS NULL
      OR public.cv_row_writable_in(v_table, 'delete', p_current, NULL, v_user, p_mine)
    WHEN p_current IS NULL THEN public.cv_row_writable_in(v_table, 'insert', p_change.row_data, NULL, v_user, p_mine)
    ELSE public.cv_row_writable_in(v_table, 'old', p_current, NULL, v_user, p_mine)
      AND public.cv_row_writable_in(v_table, 'update', p_change.row_data, p_current, v_user, p_mine) END;
  IF NOT v_allowed THEN
    RETURN 'was not its author''s to make under the cloud''s policies; sent by clinic';
  END IF;
  -- The row names its writers as the clinic server stamped them (0002): the author made this
  -- version, and a row's creator never changes (a new row's is its author).
  IF p_change.op = 'upsert' AND (
    lower(p_change.row_data ->> 'updated_by') IS DISTINCT FROM v_user::text
    OR p_current IS NOT NULL AND lower(p_change.row_data ->> 'created_by') IS DISTINCT FROM p_current ->> 'created_by'
    OR p_current IS NULL AND p_change.base_version IS NULL
      AND lower(p_change.row_data ->> 'created_by') IS DISTINCT FROM v_user::text)
  THEN
    RETURN 'names other writers (created_by, updated_by) than its author and the cloud''s row; sent by clinic';
  END IF;
  RETURN NULL;
END
$$;
-- 0007's refusal, which read the write scopes itself, and write_scope, which only it called.
DROP FUNCTION IF EXISTS cv_sync.refusal(cv_sync.change, jsonb, uuid[], uuid[]);
DROP FUNCTION IF EXISTS cv_sync.write_scope(text, jsonb);

-- 0007's, its scopes looked up per change and read with cv_sync.scope_of.
-- Appends applied changes to this log (p_log) and updates row_state; closes the conflicts a
-- resolution settles. p_source NULL = the change was made here.
-- On the cloud it also keeps their scopes (0005, "Scope"), set-based: each entry is logged with
-- its scope and scope_before (so cv_sync.track_scope, for captures, is not needed), then the rows
-- they link to are re-read. Rows copied by an initial sync (not logged) get their scopes alike.
CREATE OR REPLACE FUNCTION cv_sync.record_applied(p_changes cv_sync.change[], p_source uuid, p_log boolean) RETURNS void
  LANGUAGE plpgsql
  SET search_path = ''
AS $$
DECLARE
  v_tracks boolean := to_regclass('cv_auth.signing_key') IS NULL;
  v_linking constant text[] := ARRAY['appointments', 'encounters', 'user_branches'];
  v_old jsonb;
  v_new jsonb;
  v_moved uuid[];
BEGIN
  IF v_tracks THEN
    SELECT coalesce(jsonb_agg(l), '[]') INTO v_old
    FROM unnest(p_changes) c
    LEFT JOIN cv_sync.scopes s ON s.table_name = c.table_name AND s.row_id = c.row_id
    CROSS JOIN LATERAL jsonb_array_elements(coalesce(s.links,
      CASE WHEN c.op = 'delete' THEN cv_sync.scope_links(c.table_name, c.row_data) END, '[]')) l
    WHERE c.table_name = ANY (v_linking);
    SELECT coalesce(jsonb_agg(l), '[]') INTO v_new
    FROM unnest(p_changes) c, jsonb_array_elements(cv_sync.scope_links(c.table_name, c.row_data)) l
    WHERE c.op = 'upsert' AND c.table_name = ANY (v_linking);
    v_moved := ARRAY(SELECT c.row_id FROM unnest(p_changes) c
      JOIN cv_sync.scopes s ON s.table_name = 'encounters' AND s.row_id = c.row_id
      WHERE c.table_name = 'encounters' AND c.op = 'upsert' AND s.scope <> ARRAY[(c.row_data ->> 'branch_id')::uuid]);
  END IF;
  IF p_log THEN
    WITH c AS MATERIALIZED (
      SELECT c.*, s.scope AS scope_before,
        CASE WHEN v_tracks THEN CASE WHEN c.op = 'delete' AND s.scope IS NOT NULL THEN s.scope
          ELSE (SELECT r.scope FROM cv_sync.scope_of(c.table_name, c.row_data) r) END END AS scope
      FROM unnest(p_changes) c
      -- OFFSET 0: a lookup per change, never a join the planner may hash (the whole of scopes:
      -- 9 of the 62 ms a page of 2,000 took to log on the bench's cloud, and more as it grows).
      LEFT JOIN LATERAL (SELECT s.scope FROM cv_sync.scopes s
        WHERE v_tracks AND s.table_name = c.table_name AND s.row_id = c.row_id OFFSET 0) s ON true
    ), logged AS (
      INSERT INTO cv_sync.change_log (table_name, row_id, op, row_data, version, base_version, origin, hlc,
        changed_columns, received_from, resolves, author, scope, scope_before)
      SELECT c.table_name, c.row_id, c.op, c.row_data, c.version, c.base_version, c.origin, c.hlc,
        c.changed_columns, p_source, c.resolves, c.author, c.scope, c.scope_before
      FROM c
      RETURNING table_name, row_id, op, version, origin, hlc, txid, seq
    ), kept AS (
      INSERT INTO cv_sync.scopes AS s (table_name, row_id, scope, links)
      SELECT c.table_name, c.row_id, c.scope,
        CASE WHEN c.table_name = ANY (v_linking) THEN cv_sync.scope_links(c.table_name, c.row_data) ELSE '[]' END
      FROM c WHERE v_tracks AND c.op = 'upsert'
      ON CONFLICT (table_name, row_id) DO UPDATE SET scope = excluded.scope, links = excluded.links
    ), gone AS (
      DELETE FROM cv_sync.scopes s USING c
      WHERE v_tracks AND c.op = 'delete' AND s.table_name = c.table_name AND s.row_id = c.row_id
    )
    INSERT INTO cv_sync.row_state AS s (table_name, row_id, version, hlc, origin, deleted, deleted_at, txid, seq)
    SELECT l.table_name, l.row_id, l.version, l.hlc, l.origin, l.op = 'delete',
      CASE WHEN l.op = 'delete' THEN now() END, l.txid, l.seq
    FROM logged l
    ON CONFLICT (table_name, row_id) DO UPDATE SET
      version = excluded.version, hlc = excluded.hlc, origin = excluded.origin, deleted = excluded.deleted,
      deleted_at = excluded.deleted_at, txid = excluded.txid, seq = excluded.seq;
  ELSE
    INSERT INTO cv_sync.row_state AS s (table_name, row_id, version, hlc, origin, deleted, deleted_at)
    SELECT c.table_name, c.row_id, c.version, c.hlc, c.origin, c.op = 'delete', CASE WHEN c.op = 'delete' THEN now() END
    FROM unnest(p_changes) c
    ON CONFLICT (table_name, row_id) DO UPDATE SET
      version = excluded.version, hlc = excluded.hlc, origin = excluded.origin, deleted = excluded.deleted,
      deleted_at = excluded.deleted_at, txid = NULL, seq = NULL;
    IF v_tracks THEN
      INSERT INTO cv_sync.scopes AS s (table_name, row_id, scope, links)
      SELECT c.table_name, c.row_id, (SELECT r.scope FROM cv_sync.scope_of(c.table_name, c.row_data) r),
        CASE WHEN c.table_name = ANY (v_linking) THEN cv_sync.scope_links(c.table_name, c.row_data) ELSE '[]' END
      FROM unnest(p_changes) c WHERE c.op = 'upsert'
      ON CONFLICT (table_name, row_id) DO UPDATE SET scope = excluded.scope, links = excluded.links;
    END IF;
  END IF;
  IF v_tracks THEN
    PERFORM cv_sync.follow_links(v_new, v_old, p_log);
    PERFORM cv_sync.rescope_findings(v_moved, p_log);
  END IF;
  UPDATE cv_sync.conflicts k
  SET status = 'resolved', resolved_at = now(), resolved_by = 'node ' || c.origin::text,
    resolution = jsonb_build_object('version', c.version, 'op', c.op)
  FROM unnest(p_changes) c
  WHERE c.resolves IS NOT NULL AND k.id = c.resolves AND k.status = 'open';
END
$$;

-- 0007's, each change's row looked up by key and the write scopes of a page read in the statement
-- that judges it (cv_sync.write_scope_of). Joined, the planner merged a page from a clinic's
-- node credential with the whole table read in key order: 20,000 patients read to meet 2,000
-- changes, and the function took 85–95 ms against 70–73 by key (at 200,000 it chose the lookups
-- itself; both 73–76).
-- Of one table's changes from p_source, those its node credential (holding p_held) may apply;
-- the others go to the quarantine (cv_sync.refusal says why), and the clinic is brought back to
-- the cloud's row: where the cloud has no such row in the clinic's scope (a row planted there, or
-- one that left the scope while the clinic edited it), an eviction entry for its branches (a
-- 'rescope' entry whose scope_before is given: nothing to keep in cv_sync.scopes) makes it drop
-- its copy; where the row is the clinic's to hold, the cloud's row is written again as a new
-- version based on the refused one, which the clinic fast-forwards to.
CREATE OR REPLACE FUNCTION cv_sync.hold_refused(p_table text, p_changes cv_sync.change[], p_source uuid, p_held uuid[],
  OUT allowed cv_sync.change[], OUT held integer)
  LANGUAGE plpgsql
  SET search_path = ''
AS $$
DECLARE
  v_refused jsonb;
BEGIN
  EXECUTE format($sql$
    SELECT coalesce(array_agg(s.c) FILTER (WHERE s.reason IS NULL), '{}'),
      coalesce(jsonb_agg(jsonb_build_object('change', to_jsonb(s.c), 'current', s.current, 'reason', s.reason,
        'evict', $2 IS NOT NULL AND (s.current IS NULL OR NOT coalesce(cv_sync.row_scope(%1$L, s.current) && $2, false))))
        FILTER (WHERE s.reason IS NOT NULL), '[]')
    FROM (
      SELECT c, j.current, cv_sync.refusal(c, j.current, $2, a.mine,
          CASE WHEN $2 IS NOT NULL AND (c).op = 'upsert'
            THEN (SELECT w.scope FROM cv_sync.write_scope_of(%1$L, (c).row_data) w) END,
          CASE WHEN $2 IS NOT NULL AND j.current IS NOT NULL
            THEN (SELECT w.scope FROM cv_sync.write_scope_of(%1$L, j.current) w) END) AS reason
      FROM unnest($1) c
      -- OFFSET 0: a lookup per change, never a join the planner may merge or hash.
      LEFT JOIN LATERAL (SELECT x.* FROM public.%1$I x WHERE x.id = (c).row_id OFFSET 0) x ON true
      CROSS JOIN LATERAL (SELECT to_jsonb(x) AS current) j
      LEFT JOIN (
        SELECT u.author, array(SELECT ub.branch_id FROM public.user_branches ub WHERE ub.user_id::text = u.author) AS mine
        FROM (SELECT DISTINCT (d).author ->> 'user' AS author FROM unnest($1) d) u
      ) a ON a.author = (c).author ->> 'user'
      OFFSET 0
    ) s
  $sql$, p_table) INTO allowed, v_refused USING p_changes, p_held;
  INSERT INTO cv_sync.quarantine (source, table_name, row_id, change, current_row, reason)
  SELECT p_source, p_table, (r.item -> 'change' ->> 'row_id')::uuid, r.item -> 'change', nullif(r.item -> 'current', 'null'),
    format('%s %s %s %s', p_table, r.item -> 'change' ->> 'row_id', r.item ->> 'reason',
      (SELECT n.name FROM cv_sync.clinic_nodes n WHERE n.node_id = p_source))
  FROM jsonb_array_elements(v_refused) r(item);
  INSERT INTO cv_sync.change_log (table_name, row_id, op, row_data, version, origin, hlc, changed_columns, scope,
    scope_before)
  SELECT p_table, (c ->> 'row_id')::uuid, 'rescope', jsonb_build_object('id', c ->> 'row_id'), (c ->> 'version')::uuid,
    (c ->> 'origin')::uuid, c ->> 'hlc', '{}', '{}', array_remove(p_held, cv_sync.everywhere())
  FROM jsonb_array_elements(v_refused) r(item), LATERAL (SELECT r.item -> 'change') x(c)
  WHERE (r.item ->> 'evict')::boolean;
  PERFORM cv_sync.write_local(p_table, (c ->> 'row_id')::uuid, 'upsert',
    (r.item -> 'current') || jsonb_build_object('version', gen_random_uuid(), 'base_version', c -> 'version',
      'updated_at', now()),
    (c ->> 'version')::uuid, NULL)
  FROM jsonb_array_elements(v_refused) r(item), LATERAL (SELECT r.item -> 'change') x(c)
  WHERE NOT (r.item ->> 'evict')::boolean AND jsonb_typeof(r.item -> 'current') = 'object';
  held := jsonb_array_length(v_refused);
END
$$;

-- After an apply of p_changes (0013: why an eviction waits): lists its evictions the apply kept (the row is still here), drops
-- from the list the rows it upserted, and evicts every listed row nothing references any more,
-- children before parents. Returns how many rows it evicted. Nothing to do (nothing waits, no
-- eviction in the batch: a clinic's every apply, the cloud's nearly every one) is found first:
-- the passes over the batch took 7.5 ms for 4,000 changes.
CREATE OR REPLACE FUNCTION cv_sync.evict_deferred(p_changes cv_sync.change[]) RETURNS bigint
  LANGUAGE plpgsql
  SET search_path = ''
AS $$
DECLARE
  v_table record;
  v_batch cv_sync.change[];
  v_evicted bigint := 0;
  v_deleted bigint;
BEGIN
  IF NOT EXISTS (SELECT FROM cv_sync.deferred_evictions) AND NOT EXISTS (SELECT FROM unnest(p_changes) c WHERE c.op = 'evict') THEN
    RETURN 0;
  END IF;
  DELETE FROM cv_sync.deferred_evictions d
  WHERE (d.table_name, d.row_id) IN (SELECT c.table_name, c.row_id FROM unnest(p_changes) c WHERE c.op = 'upsert');
  FOR v_table IN SELECT DISTINCT c.table_name FROM unnest(p_changes) c WHERE c.op = 'evict' LOOP
    EXECUTE format(
      'INSERT INTO cv_sync.deferred_evictions (table_name, row_id) SELECT %1$L, x.id FROM public.%1$I x '
      'WHERE x.id = ANY ($1) ON CONFLICT DO NOTHING', v_table.table_name)
      USING ARRAY(SELECT c.row_id FROM unnest(p_changes) c WHERE c.op = 'evict' AND c.table_name = v_table.table_name);
  END LOOP;
  FOR v_table IN
    SELECT s.table_name FROM cv_sync.synced_tables s
    WHERE EXISTS (SELECT FROM cv_sync.deferred_evictions d WHERE d.table_name = s.table_name)
    ORDER BY s.position DESC
  LOOP
    v_batch := ARRAY(
      SELECT ROW(d.table_name, d.row_id, 'evict', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)::cv_sync.change
      FROM cv_sync.deferred_evictions d WHERE d.table_name = v_table.table_name);
    v_batch := ARRAY(SELECT c FROM unnest(v_batch) c WHERE c.row_id <> ALL (
      ARRAY(SELECT (r.change).row_id FROM cv_sync.referenced(v_table.table_name, v_batch) r)));
    EXECUTE format('DELETE FROM public.%I x WHERE x.id = ANY ($1)', v_table.table_name)
      USING ARRAY(SELECT c.row_id FROM unnest(v_batch) c);
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    v_evicted := v_evicted + v_deleted;
    DELETE FROM cv_sync.row_state s
    WHERE s.table_name = v_table.table_name AND s.row_id IN (SELECT c.row_id FROM unnest(v_batch) c);
    DELETE FROM cv_sync.deferred_evictions d
    WHERE d.table_name = v_table.table_name AND d.row_id IN (SELECT c.row_id FROM unnest(v_batch) c);
  END LOOP;
  RETURN v_evicted;
END
$$;

-- Whether p_hlc has cv_sync.hlc's shape before its origin: 15 digits, a dot, 10 digits, a dot, in
-- 63 characters (the origin after them is the caller's to check); false for NULL. String
-- functions, not a regular expression, which took 29 of 37 ms checking a 2,000-row initial-sync
-- page. No SET clause, so a query that calls it inlines it (no call per row); its body was bound
-- when it was created. The apply (collapse) and the initial-sync page both check with it.
CREATE OR REPLACE FUNCTION cv_sync.hlc_shaped(p_hlc text) RETURNS boolean
  LANGUAGE sql IMMUTABLE
  RETURN coalesce(pg_catalog.length(p_hlc) = 63 AND pg_catalog.ltrim(pg_catalog."left"(p_hlc, 15), '0123456789') = ''
    AND pg_catalog.substr(p_hlc, 16, 1) = '.' AND pg_catalog.ltrim(pg_catalog.substr(p_hlc, 17, 10), '0123456789') = ''
    AND pg_catalog.substr(p_hlc, 27, 1) = '.', false);

-- The latest of a batch's times, each its batch's latest (an HLC's physical milliseconds, a row's
-- updated_at and created_at), and which of them it is: what the clock check of the ordinary apply
-- and of an initial-sync page weighs.
CREATE OR REPLACE FUNCTION cv_sync.latest_time(p_hlc_physical bigint, p_updated_at timestamptz,
  p_created_at timestamptz, OUT what text, OUT at timestamptz)
  LANGUAGE sql STABLE
  SET search_path = ''
AS $$
  SELECT x.what, x.at FROM (VALUES ('HLC', pg_catalog.to_timestamp(p_hlc_physical / 1000.0)),
    ('updated_at', p_updated_at), ('created_at', p_created_at)) x(what, at)
  ORDER BY x.at DESC NULLS LAST LIMIT 1
$$;

-- CV009 (cv_sync.check_clock) when p_at, the p_what of a change of p_table, is later than this
-- node's clock plus the allowed skew.
CREATE OR REPLACE FUNCTION cv_sync.check_change_time(p_table text, p_what text, p_at timestamptz) RETURNS void
  LANGUAGE plpgsql VOLATILE
  SET search_path = ''
AS $$
BEGIN
  PERFORM cv_sync.check_clock(p_at, format('the %s of a change of %s from the other node', p_what, p_table),
    'check the clocks of that node and of this server (NTP); sync resumes by itself once the change is no longer ahead');
END
$$;

-- CV009 when a change is stamped later than this node's clock plus the allowed skew: its HLC, or
-- its row's created_at/updated_at (0007's, which sorted every change's three times: 15 ms for
-- 4,000 changes, now 6). Applied, it would win every later last-write-wins decision here, and
-- raise hlc_floor, and with it every later stamp of this node, into the future (then on to every
-- node downstream). The latest is checked and named, with its table looked up only when it is
-- ahead of this clock at all; the caller raises before writing anything, so the batch is refused
-- whole and the cursor stays.
CREATE OR REPLACE FUNCTION cv_sync.check_changes_clock(p_changes cv_sync.change[]) RETURNS void
  LANGUAGE plpgsql
  SET search_path = ''
AS $$
DECLARE
  v_max record;
  v_latest record;
  v_table text;
BEGIN
  SELECT max(cv_sync.hlc_physical(c.hlc)) AS hlc, max((c.row_data ->> 'updated_at')::timestamptz) AS updated_at,
    max((c.row_data ->> 'created_at')::timestamptz) AS created_at
  INTO v_max FROM unnest(p_changes) c;
  SELECT * INTO v_latest FROM cv_sync.latest_time(v_max.hlc, v_max.updated_at, v_max.created_at);
  IF v_latest.at > pg_catalog.clock_timestamp() THEN
    SELECT c.table_name INTO v_table FROM unnest(p_changes) c
    WHERE CASE v_latest.what WHEN 'HLC' THEN cv_sync.hlc_physical(c.hlc) = v_max.hlc
      WHEN 'updated_at' THEN (c.row_data ->> 'updated_at')::timestamptz = v_max.updated_at
      ELSE (c.row_data ->> 'created_at')::timestamptz = v_max.created_at END
    LIMIT 1;
  END IF;
  PERFORM cv_sync.check_change_time(v_table, v_latest.what, v_latest.at);
END
$$;

-- Applies collapsed changes (cv_sync.apply_received: 0008's apply_changes, renamed by 0013), then
-- the evictions that waited (0013). The unique keys are checked once all of them are written
-- (0021): a page holds each row's last image, and a key its transaction moved from one row to
-- another (a swap) is held by the first row until the second is written, whichever comes first.
-- Every deferrable constraint here is such a key (0021), so ALL names them.
CREATE OR REPLACE FUNCTION cv_sync.apply_changes(p_source uuid, p_changes cv_sync.change[], p_catchup boolean, p_log boolean)
  RETURNS jsonb
  LANGUAGE plpgsql
  SET search_path = ''
AS $$
DECLARE
  v_result jsonb;
  v_table text;
  v_detail text;
  v_constraint text;
BEGIN
  SET CONSTRAINTS ALL DEFERRED;
  v_result := cv_sync.apply_received(p_source, p_changes, p_catchup, p_log);
  v_result := v_result || jsonb_build_object('evicted',
    (v_result ->> 'evicted')::bigint + cv_sync.evict_deferred(p_changes));
  BEGIN
    SET CONSTRAINTS ALL IMMEDIATE;
  EXCEPTION WHEN unique_violation THEN
    GET STACKED DIAGNOSTICS v_table = TABLE_NAME, v_detail = PG_EXCEPTION_DETAIL, v_constraint = CONSTRAINT_NAME;
    PERFORM cv_sync.duplicate_record(v_table, v_detail, v_constraint);
  END;
  RETURN v_result;
END
$$;

-- Whether what the page ahead of a page written early (cv_sync_apply) committed here leaves that
-- page's decisions as they would have been after it: none of the rows it logged, from p_peer since
-- p_before (the page written early saw none of them), is one of p_changes' rows. A row that page
-- could see was locked by whichever of the two came first and read by the other after it; a row
-- the page ahead created could not be seen, and the page written early decided on its absence.
CREATE OR REPLACE FUNCTION cv_sync.written_early_holds(p_peer uuid, p_before pg_snapshot, p_changes cv_sync.change[])
  RETURNS boolean
  LANGUAGE sql STABLE
  SET search_path = ''
AS $$
  -- A lookup per change (change_log_row_idx), whatever the oldest transaction still open.
  SELECT NOT EXISTS (
    SELECT FROM unnest(p_changes) c
    CROSS JOIN LATERAL (SELECT FROM cv_sync.change_log l
      WHERE l.row_id = c.row_id AND l.table_name = c.table_name AND l.received_from = p_peer
        AND NOT pg_visible_in_snapshot(l.txid, p_before) AND l.txid <> pg_current_xact_id()
      OFFSET 0) l)
$$;

-- Checks and writes a batch of p_changes (the rows of p_tables) from p_source as a sync apply, for
-- cv_sync_apply: the batch's page starts at p_from (a cursor), where p_peer's cursor stands or,
-- for a batch written early, will stand once the batch ahead has committed. A page that starts
-- before the peer's catch-up mark is applied as a catch-up (cv_sync_apply_snapshot).
CREATE OR REPLACE FUNCTION cv_sync.write_batch(p_source jsonb, p_peer cv_sync.peers, p_from_txid bigint,
  p_from_seq bigint, p_changes cv_sync.change[], p_tables text[], p_catchup boolean) RETURNS jsonb
  LANGUAGE plpgsql
  SET search_path = ''
AS $$
DECLARE
  v_result jsonb;
BEGIN
  PERFORM cv_sync.check_fingerprint(p_source, p_tables);
  PERFORM cv_sync.check_changes_clock(p_changes);
  PERFORM cv_sync.begin_apply(p_peer.peer_id);
  v_result := cv_sync.apply_changes(p_peer.peer_id, p_changes,
    p_catchup OR (p_peer.catchup_txid IS NOT NULL
      AND (p_from_txid, p_from_seq) < (p_peer.catchup_txid, p_peer.catchup_seq)),
    true);
  PERFORM cv_sync.end_apply();
  RETURN v_result;
END
$$;

-- One batch from a peer, in one transaction (0008's, PROTOCOL.md "Apply"). The cursor is saved in
-- the same transaction as the rows, so a crash can neither lose a batch nor count it twice.
-- The rows are written as a sync apply (cv_sync.begin_apply, 0005) for this call only: writes
-- the caller makes afterwards in the same transaction are local again. A change stamped ahead of
-- this node's clock by more than the allowed skew refuses the whole batch (CV009, 0007).
-- The batch is read (cv_sync.collapse) before the source's cursor is locked: an engine sends the
-- next batch while this one is written, and that one's reading then overlaps this one's writes
-- instead of waiting behind them. Every check after it comes in 0008's order.
-- On a clinic server, a batch sent behind one still being applied (the source's cursor stands
-- before p_expected) is also written before the cursor is locked, in a subtransaction, and kept
-- only if, once the batch ahead has committed, the cursor is where it expects and
-- cv_sync.written_early_holds: otherwise it is rolled back and written again after the lock, as
-- is one that met a row, a parent or a key of the batch ahead (23503, 40001, 40P01, CV004). Five pages of 2,000
-- changes sent one behind the other to a clinic server alone: 773-811 ms this way against 910-957
-- (December 2026). Not on the cloud, whose scopes and judgement of a node credential's rows read
-- other rows than a batch's own, and not for a batch that resolves a conflict.
CREATE OR REPLACE FUNCTION public.cv_sync_apply(
  p_source jsonb, p_expected jsonb, p_cursor jsonb, p_changes jsonb, p_catchup boolean DEFAULT false
) RETURNS jsonb
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = ''
AS $$
DECLARE
  v_expected record := cv_sync.parse_cursor(p_expected, 'p_expected');
  v_cursor record := cv_sync.parse_cursor(p_cursor, 'p_cursor');
  v_peer cv_sync.peers;
  v_changes cv_sync.change[];
  v_tables text[];
  -- A clinic server (its signing key, 0003), where a batch may be written early.
  v_clinic boolean := to_regclass('cv_auth.signing_key') IS NOT NULL;
  v_before pg_snapshot;
  v_early text;
  v_result jsonb;
BEGIN
  -- A signed-in API user that is no clinic server's node credential is refused before anything
  -- is read; lock_peer then checks that a node applies as the one it is bound to.
  PERFORM cv_sync.require_node(NULL);
  IF (v_cursor.txid, v_cursor.seq) < (v_expected.txid, v_expected.seq) THEN
    RAISE EXCEPTION 'p_cursor % is behind p_expected %', p_cursor, p_expected USING ERRCODE = 'CV005';
  END IF;
  v_changes := cv_sync.collapse(p_changes);
  v_tables := ARRAY(SELECT DISTINCT c.table_name FROM unnest(v_changes) c);
  IF v_clinic AND NOT EXISTS (SELECT FROM unnest(v_changes) c WHERE c.resolves IS NOT NULL)
  THEN
    SELECT * INTO v_peer FROM cv_sync.peers p WHERE p.peer_id::text = p_source ->> 'node_id';
    IF FOUND AND (v_peer.cursor_txid, v_peer.cursor_seq) < (v_expected.txid, v_expected.seq) THEN
      BEGIN
        v_before := pg_current_snapshot();
        v_result := cv_sync.write_batch(p_source, v_peer, v_expected.txid, v_expected.seq, v_changes, v_tables,
          p_catchup);
        v_peer := cv_sync.lock_peer(p_source);
        IF (v_peer.cursor_txid, v_peer.cursor_seq) <> (v_expected.txid, v_expected.seq)
          OR NOT cv_sync.written_early_holds(v_peer.peer_id, v_before, v_changes)
        THEN
          RAISE EXCEPTION 'written early, to be written again' USING ERRCODE = 'CVX01';
        END IF;
        v_early := 'kept';
      EXCEPTION WHEN SQLSTATE 'CVX01' OR SQLSTATE 'CV004' OR foreign_key_violation OR serialization_failure
        OR deadlock_detected THEN
        v_result := NULL;
        v_early := 'again';
      END;
    END IF;
  END IF;
  IF v_early IS DISTINCT FROM 'kept' THEN
    v_peer := cv_sync.lock_peer(p_source);
    -- On a clinic server, the row of the HLC floor (which every apply raises at its end) is taken
    -- with the cursor: a batch written early behind this one then waits for it there. Taken
    -- first by that batch, this one would wait for it behind the cursor it holds: a deadlock,
    -- found only after deadlock_timeout (1 s). Captures only read the row.
    IF v_clinic THEN
      PERFORM FROM cv_sync.node n FOR UPDATE;
    END IF;
    -- A retry after an unknown outcome (timeout, lost connection): already applied, do nothing.
    IF (v_peer.cursor_txid, v_peer.cursor_seq) >= (v_cursor.txid, v_cursor.seq) THEN
      RETURN jsonb_build_object('status', 'duplicate', 'applied', 0, 'skipped', 0, 'conflicts', 0, 'quarantined', 0,
        'evicted', 0, 'cursor', cv_sync.cursor_json(v_peer.cursor_txid, v_peer.cursor_seq));
    END IF;
    -- The page was pulled from somewhere else than where this node stands: applying it would skip
    -- or repeat entries.
    IF (v_peer.cursor_txid, v_peer.cursor_seq) <> (v_expected.txid, v_expected.seq) THEN
      RAISE EXCEPTION 'the cursor for peer % is % here, not the expected %: another sync engine applied in between',
        v_peer.peer_id, cv_sync.cursor_json(v_peer.cursor_txid, v_peer.cursor_seq), p_expected
        USING ERRCODE = 'CV003', HINT = 're-read cv_sync_cursor and pull again from there';
    END IF;
    IF cv_sync.called_by_node()
      AND EXISTS (SELECT FROM unnest(v_changes) c WHERE c.op = 'evict') THEN
      RAISE EXCEPTION 'p_changes holds an eviction: only the cloud evicts rows, and only from a clinic server'
        USING ERRCODE = 'CV005';
    END IF;
    -- A clinic server sends the cloud only changes it originated: its pull leaves out what it
    -- received from the cloud. Another node named as origin would pass as that node's own newer
    -- edit (same origin: the higher counter wins, no conflict kept), and the pull's echo filter
    -- would never send it to that node: the two would differ for good.
    IF cv_sync.called_by_node()
      AND EXISTS (SELECT FROM unnest(v_changes) c WHERE c.origin <> v_peer.peer_id) THEN
      RAISE EXCEPTION 'p_changes holds a change whose origin is another node: a clinic server sends only the changes it made'
        USING ERRCODE = 'CV005';
    END IF;
    v_result := cv_sync.write_batch(p_source, v_peer, v_expected.txid, v_expected.seq, v_changes, v_tables, p_catchup);
  END IF;
  UPDATE cv_sync.peers p
  SET cursor_txid = v_cursor.txid, cursor_seq = v_cursor.seq, peer_name = coalesce(p_source ->> 'node_name', p.peer_name),
    fingerprint = p_source -> 'fingerprint', updated_at = now()
  WHERE p.peer_id = v_peer.peer_id;
  RETURN v_result || jsonb_build_object('status', 'applied', 'cursor', cv_sync.cursor_json(v_cursor.txid, v_cursor.seq))
    || CASE WHEN v_early IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('written_early', v_early) END;
END
$$;

-- A cv_sync function this file creates for the first time would be PUBLIC's to call: taken back
-- (and the RPC functions' grants kept) as at the end of every sync migration.
CALL cv_sync.grant_rpc();

-- sql/functions/04_client_apply.sql
-- public.cv_client_apply(changes, mode): a PC's own writes onto the clinic server or the cloud,
-- version-checked, with the PC's rights (0010 says how; packages/sync-engine/PROTOCOL.md "Client
-- apply" is the specification). SECURITY INVOKER: every row is read and written by the caller, so
-- its grants and row-level security apply; the bookkeeping runs as the owner in cv_client_seen (here
-- cv_client_seen_batch) and cv_client_settle (0010).

-- public.cv_client_seen for a whole batch: answer i is cv_client_seen(p_tables[i], p_row_ids[i],
-- p_versions[i], p_bases[i]), by the same rules (0010), so it tells a caller nothing more than
-- asking row by row would. cv_client_apply asks it once per call: one call per row (each a
-- SECURITY DEFINER call and three lookups of their own, the conflicts read whole each time since
-- nothing indexes them by row) took some 30 ms of a 500-row call's 150 on the server, this 8.
CREATE OR REPLACE FUNCTION public.cv_client_seen_batch(p_tables text[], p_row_ids uuid[], p_versions uuid[],
  p_bases uuid[]) RETURNS text[]
  LANGUAGE plpgsql STABLE SECURITY DEFINER
  SET search_path = ''
AS $$
DECLARE
  v_total integer := coalesce(cardinality(p_tables), 0);
  v_table text;
BEGIN
  IF coalesce(cardinality(p_row_ids), 0) <> v_total OR coalesce(cardinality(p_versions), 0) <> v_total
    OR coalesce(cardinality(p_bases), 0) <> v_total
  THEN
    RAISE EXCEPTION 'cv_client_seen_batch needs four arrays of one length: tables, row ids, versions, bases'
      USING ERRCODE = 'CV005';
  END IF;
  SELECT t.name INTO v_table FROM unnest(p_tables) t(name)
  WHERE NOT EXISTS (SELECT FROM cv_sync.synced_tables s WHERE s.table_name = t.name) LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION '% is not a synced table', v_table USING ERRCODE = 'CV005';
  END IF;
  -- Seen: logged, current (row_state), or kept by a conflict. Each row's log entries are read
  -- through the log's row index (a join, not EXISTS, which the planner may turn into a hash of the
  -- whole log); the conflicts of the batch's rows are read once, for all of them.
  RETURN ARRAY(
    SELECT CASE
        WHEN c.version = s.version OR c.version = ANY (k.versions) OR l.saw_version THEN 'known'
        WHEN s.deleted AND (c.base = s.version OR c.base = ANY (k.versions) OR l.saw_base) THEN 'deleted'
        ELSE 'unseen' END
    FROM unnest(p_tables, p_row_ids, p_versions, p_bases) WITH ORDINALITY c(table_name, row_id, version, base, n)
      LEFT JOIN cv_sync.row_state s ON s.table_name = c.table_name AND s.row_id = c.row_id
      CROSS JOIN LATERAL (
        SELECT bool_or(l.version = c.version) AS saw_version, bool_or(l.version = c.base) AS saw_base
        FROM cv_sync.change_log l WHERE l.row_id = c.row_id AND l.table_name = c.table_name
      ) l
      LEFT JOIN (
        SELECT k.table_name, k.row_id, array_agg(v.version) AS versions
        FROM cv_sync.conflicts k CROSS JOIN LATERAL (VALUES (k.local_version), (k.remote_version)) v(version)
        WHERE k.row_id = ANY (p_row_ids) AND v.version IS NOT NULL
        GROUP BY k.table_name, k.row_id
      ) k ON k.table_name = c.table_name AND k.row_id = c.row_id
    ORDER BY c.n);
END
$$;

-- Set-based where it can be: a drain of a PC's morning offline was one dynamic statement, one
-- subtransaction and one lock per row, three quarters of its time spent outside the rows' own
-- triggers and policies. Each run of consecutive changes of one table and op is now locked and read
-- in one statement, and its inserts, fast-forward updates and deletes are each one statement, all
-- in one subtransaction for the run; the policies still check every row (the statements are ones the person could
-- send), and every row is still captured by its triggers. What needs a row of its own goes row by
-- row as before, in wire order within its run: a conflict to settle (settle mode), and the whole run
-- when a bulk statement fails (a row refused by the policies, a constraint, a value that does not
-- fit, a parent not there yet), so each refusal is still reported for its own row and the rest
-- applies. A batch holding one row twice goes row by row throughout: its second change must see the
-- first one's write.
CREATE OR REPLACE FUNCTION public.cv_client_apply(p_changes jsonb, p_mode text DEFAULT 'settle') RETURNS jsonb
  LANGUAGE plpgsql
  SET search_path = ''
AS $$
DECLARE
  v_tables text[];
  v_ids uuid[];
  v_ops text[];
  v_rows jsonb[];
  v_versions uuid[];
  v_bases uuid[];
  v_seens text[];
  v_total integer;
  v_bad integer;
  v_bulk boolean;
  v_start integer := 1;
  v_table text;
  v_op text;
  v_slow integer[];
  v_currents jsonb;
  v_inserts integer[];
  v_updates integer[];
  v_deletes integer[];
  v_written integer[];
  v_run_skipped integer;
  v_run_conflicts integer;
  v_run_rejected jsonb;
  v_run_overlaps jsonb;
  v_k integer;
  v_id uuid;
  v_row jsonb;
  v_version uuid;
  v_base uuid;
  v_current jsonb;
  v_seen text;
  v_columns text;
  v_count bigint;
  v_applied integer := 0;
  v_skipped integer := 0;
  v_conflicts integer := 0;
  v_rejected jsonb := '[]';
  v_overlaps jsonb := '[]';
  v_code text;
  v_message text;
  v_constraint text;
BEGIN
  IF p_mode IS NULL OR p_mode NOT IN ('settle', 'carry') THEN
    RAISE EXCEPTION 'p_mode must be settle or carry' USING ERRCODE = 'CV005';
  END IF;
  IF jsonb_typeof(p_changes) IS DISTINCT FROM 'array' THEN
    RAISE EXCEPTION 'p_changes must be a JSON array of {table, id, op, row, base_version}' USING ERRCODE = 'CV005';
  END IF;
  BEGIN
    SELECT array_agg(e.item ->> 'table' ORDER BY e.n), array_agg((e.item ->> 'id')::uuid ORDER BY e.n),
      array_agg(e.item ->> 'op' ORDER BY e.n), array_agg(e.item -> 'row' ORDER BY e.n),
      array_agg((e.item -> 'row' ->> 'version')::uuid ORDER BY e.n),
      array_agg((e.item ->> 'base_version')::uuid ORDER BY e.n), count(*)
    INTO v_tables, v_ids, v_ops, v_rows, v_versions, v_bases, v_total
    FROM jsonb_array_elements(p_changes) WITH ORDINALITY e(item, n);
  EXCEPTION WHEN invalid_text_representation THEN
    RAISE EXCEPTION 'p_changes holds a change with a malformed id or version' USING ERRCODE = 'CV005';
  END;
  SELECT min(i) INTO v_bad FROM generate_series(1, v_total) i
  WHERE v_ids[i] IS NULL OR v_ops[i] IS NULL OR v_ops[i] NOT IN ('upsert', 'delete')
    OR (v_ops[i] = 'upsert' AND (jsonb_typeof(v_rows[i]) IS DISTINCT FROM 'object' OR v_versions[i] IS NULL
      OR (v_rows[i] ->> 'id') IS DISTINCT FROM v_ids[i]::text))
    OR (v_ops[i] = 'delete' AND v_bases[i] IS NULL);
  IF v_bad IS NOT NULL THEN
    RAISE EXCEPTION 'p_changes holds a malformed change of %', coalesce(v_tables[v_bad], 'no table') USING ERRCODE = 'CV005';
  END IF;
  -- Validates the table names too (CV005 for anything but a synced table). A row's answer depends
  -- on its own log entries only, so asking for the whole batch before writing any of it answers
  -- as asking just before its write would, unless the row is twice in the batch (asked again then).
  v_seens := public.cv_client_seen_batch(v_tables, v_ids,
    ARRAY(SELECT coalesce(v_versions[i], v_bases[i]) FROM generate_series(1, v_total) i ORDER BY i), v_bases);
  v_bulk := (SELECT count(DISTINCT (v_tables[i], v_ids[i])) FROM generate_series(1, v_total) i) = v_total;
  -- Who the person is, settled in a statement of its own: a clinic session the server has not
  -- verified yet is verified once and remembered here, where a bulk statement's rows would each
  -- verify it again (they all read the snapshot taken before the first one remembered it).
  PERFORM auth.uid();

  FOR v_end IN 1 .. v_total LOOP
    CONTINUE WHEN v_end < v_total AND v_tables[v_end + 1] = v_tables[v_start] AND v_ops[v_end + 1] = v_ops[v_start];
    -- The run v_start .. v_end: one table, one op.
    v_table := v_tables[v_start];
    v_op := v_ops[v_start];
    v_slow := ARRAY(SELECT generate_series(v_start, v_end));
    IF v_bulk THEN
      BEGIN
        EXECUTE format('SELECT coalesce(jsonb_object_agg(s.id, s.r), ''{}'') FROM '
          '(SELECT x.id, to_jsonb(x) AS r FROM public.%I x WHERE x.id = ANY ($1) FOR UPDATE) s', v_table)
          INTO v_currents USING v_ids[v_start:v_end];
        v_slow := '{}';
        v_inserts := '{}';
        v_updates := '{}';
        v_deletes := '{}';
        v_run_skipped := 0;
        v_run_conflicts := 0;
        v_run_rejected := '[]';
        FOR v_k IN v_start .. v_end LOOP
          v_current := v_currents -> v_ids[v_k]::text;
          IF v_op = 'delete' THEN
            IF v_current IS NULL THEN
              v_run_skipped := v_run_skipped + 1;
            ELSIF (v_current ->> 'version')::uuid = v_bases[v_k] THEN
              v_deletes := v_deletes || v_k;
            ELSE
              v_run_rejected := v_run_rejected || jsonb_build_object('table', v_table, 'id', v_ids[v_k], 'code', 'conflict',
                'message', format('the %s row changed on the server after this PC deleted it; the delete was not applied: '
                  'review the row and delete it again if it should go', v_table));
            END IF;
          ELSIF v_seens[v_k] = 'known' OR (v_current ->> 'version')::uuid = v_versions[v_k] THEN
            v_run_skipped := v_run_skipped + 1;
          ELSIF v_current IS NULL AND v_seens[v_k] = 'unseen' THEN
            v_inserts := v_inserts || v_k;
          ELSIF v_current IS NOT NULL AND (v_current ->> 'version')::uuid IS NOT DISTINCT FROM v_bases[v_k] THEN
            v_updates := v_updates || v_k;
          ELSIF p_mode = 'carry' THEN
            -- The server changed (or deleted) the row concurrently; the regular sync settles it with
            -- both rows' real clocks.
            v_run_conflicts := v_run_conflicts + 1;
          ELSE
            v_slow := v_slow || v_k;
          END IF;
        END LOOP;
        IF cardinality(v_inserts) > 0 THEN
          EXECUTE format('INSERT INTO public.%1$I SELECT r.* FROM unnest($1) e, jsonb_populate_record(NULL::public.%1$I, e) r',
            v_table) USING ARRAY(SELECT v_rows[k] FROM unnest(v_inserts) k);
        END IF;
        IF cardinality(v_updates) > 0 THEN
          v_columns := cv_util.update_columns(v_table);
          EXECUTE format(
            'UPDATE public.%1$I x SET (%2$s) = (SELECT %2$s FROM jsonb_populate_record(NULL::public.%1$I, e)) '
            'FROM unnest($1) e WHERE x.id = (e ->> ''id'')::uuid', v_table, v_columns)
            USING ARRAY(SELECT v_rows[k] FROM unnest(v_updates) k);
          GET DIAGNOSTICS v_count = ROW_COUNT;
          IF v_count < cardinality(v_updates) THEN
            RAISE EXCEPTION 'not allowed' USING ERRCODE = 'insufficient_privilege';
          END IF;
        END IF;
        IF cardinality(v_deletes) > 0 THEN
          EXECUTE format('DELETE FROM public.%I x WHERE x.id = ANY ($1)', v_table)
            USING ARRAY(SELECT v_ids[k] FROM unnest(v_deletes) k);
          GET DIAGNOSTICS v_count = ROW_COUNT;
          IF v_count < cardinality(v_deletes) THEN
            RAISE EXCEPTION 'not allowed' USING ERRCODE = 'insufficient_privilege';
          END IF;
        END IF;
        -- Each clash between two bookings written here is answered once, as row by row would: by
        -- the later one (the earlier one had not met it yet), or by the earlier one when only its
        -- slot moved.
        v_run_overlaps := '[]';
        IF v_table = 'appointments' AND p_mode = 'settle' THEN
          v_written := ARRAY(SELECT k FROM unnest(v_inserts || v_updates) k ORDER BY k);
          SELECT coalesce(jsonb_agg(o.clash ORDER BY o.k, o.n), '[]') INTO v_run_overlaps
          FROM (
            SELECT k, f.n, f.clash, array_position(v_ids[v_start:v_end], (f.clash ->> 'with')::uuid) + v_start - 1 AS other
            FROM unnest(v_written) k, jsonb_array_elements(public.cv_client_overlaps(v_table, v_ids[k],
              v_currents -> v_ids[k]::text, p_mode)) WITH ORDINALITY f(clash, n)
          ) o
          WHERE o.other IS NULL OR o.other < o.k OR o.other <> ALL (v_written) OR NOT EXISTS (
            SELECT FROM jsonb_array_elements(public.cv_client_overlaps(v_table, v_ids[o.other],
              v_currents -> v_ids[o.other]::text, p_mode)) b WHERE (b ->> 'with')::uuid = v_ids[o.k]);
        END IF;
        v_applied := v_applied + cardinality(v_inserts) + cardinality(v_updates) + cardinality(v_deletes);
        v_skipped := v_skipped + v_run_skipped;
        v_conflicts := v_conflicts + v_run_conflicts;
        v_rejected := v_rejected || v_run_rejected;
        v_overlaps := v_overlaps || v_run_overlaps;
      EXCEPTION WHEN insufficient_privilege OR integrity_constraint_violation OR data_exception THEN
        -- A row of the run is refused: its subtransaction is undone and the run goes row by row,
        -- where the refusal is reported for that row and the others still apply.
        v_slow := ARRAY(SELECT generate_series(v_start, v_end));
      END;
    END IF;

    FOREACH v_k IN ARRAY v_slow LOOP
      v_id := v_ids[v_k];
      v_row := v_rows[v_k];
      v_version := v_versions[v_k];
      v_base := v_bases[v_k];
      -- A row twice in the batch: what this node has seen of it may be the change before this one.
      v_seen := CASE WHEN v_bulk THEN v_seens[v_k]
        ELSE public.cv_client_seen(v_table, v_id, coalesce(v_version, v_base), v_base) END;
      -- One subtransaction per row: a row refused for good is reported and the others still apply.
      BEGIN
        EXECUTE format('SELECT to_jsonb(x) FROM public.%I x WHERE x.id = $1 FOR UPDATE', v_table)
          INTO v_current USING v_id;
        IF v_op = 'delete' THEN
          IF v_current IS NULL THEN
            v_skipped := v_skipped + 1;
          ELSIF (v_current ->> 'version')::uuid = v_base THEN
            EXECUTE format('DELETE FROM public.%I x WHERE x.id = $1', v_table) USING v_id;
            GET DIAGNOSTICS v_count = ROW_COUNT;
            IF v_count = 0 THEN
              RAISE EXCEPTION 'not allowed' USING ERRCODE = 'insufficient_privilege';
            END IF;
            v_applied := v_applied + 1;
          ELSE
            v_rejected := v_rejected || jsonb_build_object('table', v_table, 'id', v_id, 'code', 'conflict',
              'message', format('the %s row changed on the server after this PC deleted it; the delete was not applied: '
                'review the row and delete it again if it should go', v_table));
          END IF;
        ELSIF v_seen = 'known' OR (v_current ->> 'version')::uuid = v_version THEN
          v_skipped := v_skipped + 1;
        ELSIF v_current IS NULL AND (v_seen = 'unseen' OR p_mode = 'settle') THEN
          EXECUTE format('INSERT INTO public.%1$I SELECT r.* FROM jsonb_populate_record(NULL::public.%1$I, $1) r', v_table)
            USING v_row;
          IF v_seen = 'deleted' THEN
            -- Edited on the PC, deleted here meanwhile: the policy decides, the loser is kept.
            PERFORM public.cv_client_settle(v_table, v_id, v_base, (v_row ->> 'updated_at')::timestamptz);
            v_conflicts := v_conflicts + 1;
          ELSE
            v_applied := v_applied + 1;
            v_overlaps := v_overlaps || public.cv_client_overlaps(v_table, v_id, v_current, p_mode);
          END IF;
        ELSIF v_current IS NOT NULL AND (v_current ->> 'version')::uuid IS NOT DISTINCT FROM v_base
          OR p_mode = 'settle'
        THEN
          v_columns := cv_util.update_columns(v_table);
          EXECUTE format(
            'UPDATE public.%1$I x SET (%2$s) = (SELECT %2$s FROM jsonb_populate_record(NULL::public.%1$I, $1)) '
            'WHERE x.id = $2', v_table, v_columns) USING v_row, v_id;
          GET DIAGNOSTICS v_count = ROW_COUNT;
          IF v_count = 0 THEN
            RAISE EXCEPTION 'not allowed' USING ERRCODE = 'insufficient_privilege';
          END IF;
          IF (v_current ->> 'version')::uuid IS NOT DISTINCT FROM v_base THEN
            v_applied := v_applied + 1;
            v_overlaps := v_overlaps || public.cv_client_overlaps(v_table, v_id, v_current, p_mode);
          ELSE
            PERFORM public.cv_client_settle(v_table, v_id, v_base, (v_row ->> 'updated_at')::timestamptz);
            v_conflicts := v_conflicts + 1;
          END IF;
        ELSE
          -- carry: the server changed (or deleted) the row concurrently; the regular sync settles it
          -- with both rows' real clocks.
          v_conflicts := v_conflicts + 1;
        END IF;
      EXCEPTION
        WHEN insufficient_privilege THEN
          v_rejected := v_rejected || jsonb_build_object('table', v_table, 'id', v_id, 'code', 'unauthorized',
            'message', format('this login may not write this %s row (grants or row-level security, SQLSTATE 42501): '
              'its branch is not one of the person''s, or a row it links to (its patient, room, doctor) is not one '
              'they see on this server, or has not reached it yet; ask an administrator for access to its branch, '
              'or discard the change', v_table));
        WHEN integrity_constraint_violation THEN
          GET STACKED DIAGNOSTICS v_constraint = CONSTRAINT_NAME, v_code = RETURNED_SQLSTATE;
          IF v_code = '23505' AND v_constraint = v_table || '_pkey' THEN
            -- The id exists but the caller's policies hide it.
            v_rejected := v_rejected || jsonb_build_object('table', v_table, 'id', v_id, 'code', 'unauthorized',
              'message', format('this %s row exists on the server but this login may not see it; '
                'ask an administrator for access to its branch', v_table));
          ELSE
            v_rejected := v_rejected || jsonb_build_object('table', v_table, 'id', v_id, 'code', 'constraint',
              'message', format('the %s row violates %s (SQLSTATE %s); correct the record and save it again',
                v_table, coalesce(nullif(v_constraint, ''), 'a constraint'), v_code));
          END IF;
        WHEN data_exception THEN
          GET STACKED DIAGNOSTICS v_code = RETURNED_SQLSTATE;
          v_rejected := v_rejected || jsonb_build_object('table', v_table, 'id', v_id, 'code', 'invalid_input',
            'message', format('a value of the %s row does not fit its column (SQLSTATE %s); correct the record',
              v_table, v_code));
        WHEN SQLSTATE 'CV009' THEN
          -- Its written-at, which would order it in the settle, is later than this server's clock
          -- plus the allowed skew (0010): refused for this row alone. Refusing the whole call, as
          -- before, held every other write of the PC's outbox back with it, drain after drain:
          -- the stamp is in the row, so correcting the PC's clock did not clear it.
          v_rejected := v_rejected || jsonb_build_object('table', v_table, 'id', v_id, 'code', 'invalid_input',
            'message', format('this PC saved the %s row at a time later than this server''s clock allows (the PC''s '
              'clock was ahead, SQLSTATE CV009); set the PC''s date and time right, then edit the record again or '
              'discard the change', v_table));
        WHEN SQLSTATE 'CV008' THEN
          GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT;
          v_rejected := v_rejected || jsonb_build_object('table', v_table, 'id', v_id, 'code', 'conflict',
            'message', v_message || '; review the row by hand and save it again');
      END;
    END LOOP;
    v_start := v_end + 1;
  END LOOP;
  RETURN jsonb_build_object('applied', v_applied, 'skipped', v_skipped, 'conflicts', v_conflicts,
    'rejected', v_rejected, 'overlaps', v_overlaps);
END
$$;

-- Written for a PC's signed-in person and nobody else: never the sync role nor the service key,
-- which are past row-level security (the sync has cv_sync_apply). Named roles too: Supabase's
-- default privileges hand every new function in public to its API roles.
REVOKE ALL ON FUNCTION public.cv_client_apply(jsonb, text),
  public.cv_client_seen_batch(text[], uuid[], uuid[], uuid[]) FROM PUBLIC;
DO $grants$
DECLARE
  v_role text;
BEGIN
  FOR v_role IN SELECT r.rolname FROM pg_roles r WHERE r.rolname IN ('anon', 'service_role') LOOP
    EXECUTE format('REVOKE ALL ON FUNCTION public.cv_client_apply(jsonb, text), '
      'public.cv_client_seen_batch(text[], uuid[], uuid[], uuid[]) FROM %I', v_role);
  END LOOP;
END
$grants$;
GRANT EXECUTE ON FUNCTION public.cv_client_apply(jsonb, text),
  public.cv_client_seen_batch(text[], uuid[], uuid[], uuid[]) TO authenticated;

-- sql/functions/05_capture.sql
-- Change capture, once per statement (triggers: 0015; the per-row capture it replaced: 0005), and
-- the audit trail's events for the log entries it writes (trigger: 0015; the per-row one: 0012).
-- 0015 carries the same two bodies: it creates the triggers that name them, and the files here run
-- only after every numbered migration. Change them here; 0015 stays as applied.

-- cv_sync.capture(): AFTER INSERT / UPDATE / DELETE … FOR EACH STATEMENT on every synced table,
-- one trigger per event (PostgreSQL allows transition tables only so), with the statement's rows as
-- `new_rows` (INSERT, UPDATE) and `old_rows` (UPDATE, DELETE). It writes the log exactly as the
-- per-row capture did, row for row, in one INSERT into the log and one upsert of row_state per
-- statement (PROTOCOL.md "Capture"):
--   - each row its own entry and its own HLC, taken in the order the statement wrote the rows (the
--     order of its transition table), so seq and the HLC's logical part order them as before;
--   - INSERT: the row's version and base_version, no changed_columns;
--   - UPDATE: base_version the replaced version, changed_columns the columns that differ from the
--     replaced row (meta columns left out: every edit changes them), in key order;
--   - DELETE: a version of its own, base_version the last one, the last image, a tombstone.
-- SECURITY DEFINER because it runs in app sessions, which must not be able to write the log
-- themselves. The triggers' WHEN clause keeps a sync apply's statements out of this function
-- (cv_sync.guard makes sure the setting it reads means a real apply), so a replicated row is never
-- logged again and never notifies; PostgreSQL still copies it into the transition tables, the one
-- cost it pays here.
--
-- An UPDATE's rows are paired by the version chain, not by position: cv_touch_row (0002, fired
-- under the same WHEN) gives every updated row base_version = the replaced row's version, so the
-- new row (id, base_version) has exactly one old row (id, version). One query can write the same
-- row twice and hand both writes to one statement trigger (a data-modifying CTE and the
-- ON DELETE SET NULL cascade it causes share one transition table): the chain pairs each write
-- with the image it replaced, both are logged, and row_state keeps the later one. An old row left
-- without a partner is a row whose id changed (CV007): it would be left behind on every peer.
--
-- On the clinic server (it has a clinic signing key, 0003) a statement that logged a row also
-- sends NOTIFY cv_sync_change, so the sync daemon starts a cycle at once instead of at its next
-- tick. Never on the cloud: NOTIFY takes a lock shared by the whole server at commit, and nothing
-- there listens. Asked once per statement, not per row.
CREATE OR REPLACE FUNCTION cv_sync.capture() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = ''
AS $$
DECLARE
  v_node uuid;
  v_floor bigint;
  v_author jsonb;
  v_moved uuid;
  v_logged bigint;
BEGIN
  SELECT n.node_id, n.hlc_floor INTO v_node, v_floor FROM cv_sync.node n;
  v_author := cv_sync.current_author();

  IF TG_OP = 'INSERT' THEN
    WITH entry AS (
      INSERT INTO cv_sync.change_log (table_name, row_id, op, row_data, version, base_version, origin, hlc,
        changed_columns, author)
      SELECT TG_TABLE_NAME, x.id, 'upsert', to_jsonb(x), x.version, x.base_version, v_node, cv_sync.hlc(v_floor, v_node),
        NULL, v_author
      FROM new_rows x
      RETURNING table_name, row_id, op, version, origin, hlc, txid, seq
    )
    INSERT INTO cv_sync.row_state AS s (table_name, row_id, version, hlc, origin, deleted, deleted_at, txid, seq)
    SELECT DISTINCT ON (e.row_id) e.table_name, e.row_id, e.version, e.hlc, e.origin, false, NULL, e.txid, e.seq
    FROM entry e
    ORDER BY e.row_id, e.seq DESC
    ON CONFLICT (table_name, row_id) DO UPDATE SET
      version = excluded.version, hlc = excluded.hlc, origin = excluded.origin, deleted = excluded.deleted,
      deleted_at = excluded.deleted_at, txid = excluded.txid, seq = excluded.seq;

  ELSIF TG_OP = 'UPDATE' THEN
    SELECT o.id INTO v_moved FROM old_rows o
    WHERE NOT EXISTS (SELECT FROM new_rows n WHERE n.id = o.id AND n.base_version = o.version)
    LIMIT 1;
    IF FOUND THEN
      RAISE EXCEPTION 'the id of a synced row cannot change (%.% %)', TG_TABLE_SCHEMA, TG_TABLE_NAME, v_moved
        USING ERRCODE = 'CV007', HINT = 'insert a new row and delete the old one';
    END IF;
    -- MATERIALIZED: each replaced image is built once; inlined, it would be rebuilt for every
    -- column compared below (ten times the cost of the whole capture).
    WITH old AS MATERIALIZED (
      SELECT y.id, y.version, to_jsonb(y) AS row_data FROM old_rows y
    ), entry AS (
      INSERT INTO cv_sync.change_log (table_name, row_id, op, row_data, version, base_version, origin, hlc,
        changed_columns, author)
      SELECT TG_TABLE_NAME, c.id, 'upsert', c.row_data, c.version, c.base_version, v_node, cv_sync.hlc(v_floor, v_node),
        c.changed, v_author
      -- The ORDER BY keeps this subquery whole, so the HLC and seq above are taken in write order.
      FROM (
        SELECT n.ord, n.id, n.row_data, n.version, n.base_version,
          (SELECT coalesce(array_agg(k.key ORDER BY k.key), '{}') FROM jsonb_each(n.row_data) k
            WHERE k.key NOT IN ('created_at', 'updated_at', 'version', 'base_version', 'created_by', 'updated_by')
              AND k.value IS DISTINCT FROM o.row_data -> k.key) AS changed
        FROM (SELECT row_number() OVER () AS ord, x.id, to_jsonb(x) AS row_data, x.version, x.base_version
          FROM new_rows x) n
        JOIN old o ON o.id = n.id AND o.version = n.base_version
        ORDER BY n.ord
      ) c
      RETURNING table_name, row_id, op, version, origin, hlc, txid, seq
    )
    -- One row written twice by one query: its later write is its state.
    INSERT INTO cv_sync.row_state AS s (table_name, row_id, version, hlc, origin, deleted, deleted_at, txid, seq)
    SELECT DISTINCT ON (e.row_id) e.table_name, e.row_id, e.version, e.hlc, e.origin, false, NULL, e.txid, e.seq
    FROM entry e
    ORDER BY e.row_id, e.seq DESC
    ON CONFLICT (table_name, row_id) DO UPDATE SET
      version = excluded.version, hlc = excluded.hlc, origin = excluded.origin, deleted = excluded.deleted,
      deleted_at = excluded.deleted_at, txid = excluded.txid, seq = excluded.seq;

  ELSE
    WITH entry AS (
      INSERT INTO cv_sync.change_log (table_name, row_id, op, row_data, version, base_version, origin, hlc,
        changed_columns, author)
      SELECT TG_TABLE_NAME, x.id, 'delete', to_jsonb(x), gen_random_uuid(), x.version, v_node,
        cv_sync.hlc(v_floor, v_node), NULL, v_author
      FROM old_rows x
      RETURNING table_name, row_id, op, version, origin, hlc, txid, seq
    )
    INSERT INTO cv_sync.row_state AS s (table_name, row_id, version, hlc, origin, deleted, deleted_at, txid, seq)
    SELECT DISTINCT ON (e.row_id) e.table_name, e.row_id, e.version, e.hlc, e.origin, true, now(), e.txid, e.seq
    FROM entry e
    ORDER BY e.row_id, e.seq DESC
    ON CONFLICT (table_name, row_id) DO UPDATE SET
      version = excluded.version, hlc = excluded.hlc, origin = excluded.origin, deleted = excluded.deleted,
      deleted_at = excluded.deleted_at, txid = excluded.txid, seq = excluded.seq;
  END IF;

  GET DIAGNOSTICS v_logged = ROW_COUNT;
  IF v_logged > 0 AND to_regclass('cv_auth.signing_key') IS NOT NULL THEN
    PERFORM pg_notify('cv_sync_change', '');
  END IF;
  RETURN NULL;
END
$$;

-- cv_audit.record_change(): AFTER INSERT … FOR EACH STATEMENT on the change log, its rows as
-- `new_entries`. Every entry made here (received_from NULL) is an event; a 'rescope' entry (0005)
-- is none: nobody changed the row. The same events as the per-row trigger wrote, in the same
-- order (the log's seq): `written`, `at` and event_id are taken row by row as before, and the seal
-- hashes only what is stored, so the chain is the same chain.
CREATE OR REPLACE FUNCTION cv_audit.record_change() RETURNS trigger
  LANGUAGE plpgsql
  SET search_path = ''
AS $$
BEGIN
  INSERT INTO cv_audit.events (node_id, author, action, table_name, row_id, patient_id, version, changed_columns)
  SELECT e.origin, e.author,
    CASE WHEN e.op = 'delete' THEN 'delete' WHEN e.base_version IS NULL THEN 'insert' ELSE 'update' END,
    e.table_name, e.row_id, cv_audit.patient_of(e.table_name, e.row_data), e.version, e.changed_columns
  -- The ORDER BY keeps this subquery whole, so `written` follows seq.
  FROM (SELECT * FROM new_entries x WHERE x.received_from IS NULL AND x.op <> 'rescope' ORDER BY x.seq) e;
  RETURN NULL;
END
$$;

REVOKE ALL ON FUNCTION cv_audit.record_change() FROM PUBLIC;
CALL cv_sync.grant_rpc();

-- sql/functions/06_snapshot.sql
-- The initial sync's pages (0006's cv_sync_snapshot, 0008's cv_sync_apply_snapshot;
-- packages/sync-engine/PROTOCOL.md "Initial sync").
--
-- A page carries each row as the text of its table's row type (`t::text`, every column in table
-- order, each value in its type's text form as COPY writes it), the column names once, and each row's id, version
-- and HLC beside it: the engine passes the texts on without parsing them, and the target parses
-- each value once, with its type's input function. Both sides fix the settings that shape a
-- value's text (dates, intervals, floats, bytea), so a value reads back exactly as it was written
-- whatever the sessions' own settings. Both functions are VOLATILE: behind PostgREST a STABLE
-- call is folded into the query that wraps it and was seen to run twice per request (once for
-- the count, once for the body); a VOLATILE one runs once.

-- One page of p_table in id order after p_after_id, rows in this node credential's scope only, as
-- a set of json values: first the page's header
--   {node_id, epoch, fingerprint, now, table, after_id, last_id, has_more, cursor,
--    format: 'row_text', columns: [name, …], end_marker: true}
-- then its rows in id order, in chunks of 100 (more when the page would otherwise need over 998
-- chunks): [[id, version, hlc, row text], …], then an empty chunk, the end marker (as
-- cv_sync_pull's, 10_pull.sql). PostgREST sends a set as one array, [header, chunk, …, []], and
-- caps it at db-max-rows (Supabase's 1000). A set, not one json value:
-- behind PostgREST a scalar result is aggregated and parsed again (json_agg(…)->0), and each of
-- the page's copies in the function and around it was a fresh megabyte of memory; chunks of ~60 KB
-- are not. The rows, last_id and has_more come from one statement (one snapshot: a row deleted
-- meanwhile cannot leave last_id naming a row the page does not hold). The cursor is the horizon
-- taken before that statement (a VOLATILE function reads each statement at a new snapshot): every
-- change the rows may miss is at or after it, so the catch-up replays it.
-- Until December 2026 it returned the page as one json value. A function's return type cannot be
-- replaced, only dropped with the function; the grants come back with cv_sync.grant_rpc() at the
-- end of this file, in the same transaction.
DO $$
BEGIN
  IF (SELECT NOT p.proretset FROM pg_catalog.pg_proc p
      WHERE p.oid = pg_catalog.to_regprocedure('public.cv_sync_snapshot(text, uuid, integer)')) THEN
    DROP FUNCTION public.cv_sync_snapshot(text, uuid, integer);
  END IF;
END
$$;
CREATE OR REPLACE FUNCTION public.cv_sync_snapshot(p_table text, p_after_id uuid DEFAULT NULL, p_limit integer DEFAULT 1000)
  RETURNS SETOF json
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER
  SET search_path = ''
  SET datestyle = 'ISO, YMD'
  SET intervalstyle = 'postgres'
  SET extra_float_digits = 3
  SET bytea_output = 'hex'
  SET timezone = 'UTC'
AS $$
DECLARE
  v_held uuid[];
  v_in_scope text;
  v_cursor json;
BEGIN
  PERFORM cv_sync.require_node(NULL);
  v_held := cv_sync.node_scope();
  IF NOT EXISTS (SELECT FROM cv_sync.synced_tables s WHERE s.table_name = p_table) THEN
    RAISE EXCEPTION 'unknown synced table %', coalesce(p_table, 'null') USING ERRCODE = 'CV005';
  END IF;
  -- At most the engine's largest page (maxPageSize): a credential asking for more would have one
  -- statement build a page of any size in this server's memory until statement_timeout.
  IF p_limit IS NULL OR p_limit < 1 OR p_limit > 200000 THEN
    RAISE EXCEPTION 'p_limit must be a number from 1 to 200000, got %', p_limit USING ERRCODE = 'CV005';
  END IF;
  v_cursor := cv_sync.cursor_json(cv_sync.horizon(), 0);
  -- $3: the scope held; a row copied unlogged may lack a kept scope, then it is read now.
  v_in_scope := CASE WHEN v_held IS NULL THEN 'true' ELSE format(
    'coalesce((SELECT sc.scope FROM cv_sync.scopes sc WHERE sc.table_name = %1$L AND sc.row_id = t.id), '
    'cv_sync.row_scope(%1$L, to_jsonb(t))) && $3', p_table) END;
  -- One row past the page tells has_more. Each row's HLC is looked up by its key (a subquery per
  -- row): joined, the planner hashed the page against a scan of all of row_state, every table's
  -- entries, on every page. An id's text sorts as the uuid does (fixed-width lowercase hex).
  RETURN QUERY EXECUTE format(
    'WITH p AS (SELECT x.id, x.n, json_build_array(x.id, x.version, '
    '    coalesce(x.hlc, cv_sync.synthetic_hlc(x.updated_at, node.node_id)), x.r::text) AS item '
    '  FROM (SELECT t.id, t.version, t.updated_at, t AS r, row_number() OVER (ORDER BY t.id) AS n, '
    '          (SELECT rs.hlc FROM cv_sync.row_state rs WHERE rs.table_name = %1$L AND rs.row_id = t.id) AS hlc '
    '        FROM public.%1$I t WHERE ($1 IS NULL OR t.id > $1) AND %2$s ORDER BY t.id LIMIT $2 + 1) x '
    '  CROSS JOIN cv_sync.node) '
    'SELECT c.value FROM ('
    '  SELECT 0::bigint AS k, json_build_object(''node_id'', node.node_id, ''epoch'', node.epoch, '
    '    ''fingerprint'', cv_sync.fingerprint(), ''now'', clock_timestamp(), ''table'', %1$L, ''after_id'', $1, '
    '    ''last_id'', coalesce((SELECT max(p.id::text COLLATE "C") FROM p WHERE p.n <= $2)::uuid, $1), '
    '    ''has_more'', EXISTS (SELECT FROM p WHERE p.n > $2), ''cursor'', $4, ''format'', ''row_text'', '
    '    ''end_marker'', true, '
    '    ''columns'', (SELECT json_agg(a.attname ORDER BY a.attnum) FROM pg_catalog.pg_attribute a '
    '      WHERE a.attrelid = %3$L::regclass AND a.attnum > 0 AND NOT a.attisdropped)) AS value '
    '  FROM cv_sync.node '
    '  UNION ALL '
    '  SELECT min(p.n), json_agg(p.item ORDER BY p.n) FROM p WHERE p.n <= $2 GROUP BY (p.n - 1) / greatest(100, $2::bigint / 998 + 1)) c '
    'ORDER BY c.k', p_table, v_in_scope, format('public.%I', p_table))
  USING p_after_id, p_limit, v_held, v_cursor;
  RETURN NEXT '[]'::json;
END
$$;

-- The first copy of a range on a clinic server without the per-row triggers of foreign keys,
-- where this function's owner may set session_replication_role (a superuser, or one granted SET
-- on it; never on a hosted cloud, which runs the ordinary apply anyway). A foreign key checks each
-- inserted row on its own (a lookup and a FOR KEY SHARE lock of the parent per row and key: 17 of
-- the ~45 µs a copied appointment cost with its four), and an apply also fills the capture's
-- transition tables with every row, to log none of them. In replica mode neither runs; the
-- references are then checked once per page and key (cv_sync.copy_missing_references), with the
-- lock the per-row check takes, so the copy never holds a dangling reference either.
-- Only for a table whose triggers are the sync's own (which do nothing in an apply) and foreign
-- keys of one column: any other trigger must fire. Returns the mode to restore, or NULL when the
-- ordinary path is the one to take (the setting is then left as it was).
CREATE OR REPLACE FUNCTION cv_sync.enter_copy_mode(p_table text) RETURNS text
  LANGUAGE plpgsql VOLATILE
  SET search_path = ''
AS $$
DECLARE
  v_rel regclass := format('public.%I', p_table)::regclass;
  v_prior text := pg_catalog.current_setting('session_replication_role');
BEGIN
  IF v_prior <> 'origin'
    OR EXISTS (SELECT FROM pg_catalog.pg_trigger g
      LEFT JOIN pg_catalog.pg_constraint c ON c.oid = g.tgconstraint
      WHERE g.tgrelid = v_rel AND CASE WHEN g.tgisinternal THEN c.contype IS DISTINCT FROM 'f'
        ELSE g.tgname NOT IN ('cv_touch_row', 'cv_sync_guard', 'cv_sync_guard_row', 'cv_sync_capture_insert',
          'cv_sync_capture_update', 'cv_sync_capture_delete') END)
    OR EXISTS (SELECT FROM pg_catalog.pg_constraint c
      WHERE c.conrelid = v_rel AND c.contype = 'f' AND pg_catalog.cardinality(c.conkey) <> 1)
  THEN
    RETURN NULL;
  END IF;
  PERFORM pg_catalog.set_config('session_replication_role', 'replica', true);
  RETURN v_prior;
EXCEPTION WHEN insufficient_privilege THEN
  RETURN NULL;
END
$$;

-- How many distinct references of the rows of p_table in (p_after, p_last] name no row of the
-- table they reference, for every foreign key of p_table (one column each: enter_copy_mode). The
-- parents found are locked FOR KEY SHARE until the transaction ends, as a foreign key's own check
-- locks them: none of them can be deleted, or its key changed, before this copy commits.
CREATE OR REPLACE FUNCTION cv_sync.copy_missing_references(p_table text, p_after uuid, p_last uuid) RETURNS bigint
  LANGUAGE plpgsql VOLATILE
  SET search_path = ''
AS $$
DECLARE
  v_key record;
  v_missing bigint;
  v_total bigint := 0;
BEGIN
  FOR v_key IN SELECT a.attname AS col, c.confrelid::regclass::text AS parent, pa.attname AS ref
    FROM pg_catalog.pg_constraint c
    JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
    JOIN pg_catalog.pg_attribute pa ON pa.attrelid = c.confrelid AND pa.attnum = c.confkey[1]
    WHERE c.conrelid = format('public.%I', p_table)::regclass AND c.contype = 'f'
  LOOP
    EXECUTE format(
      'WITH k AS (SELECT DISTINCT x.%1$I AS k FROM public.%2$I x '
      '  WHERE ($1 IS NULL OR x.id > $1) AND x.id <= $2 AND x.%1$I IS NOT NULL), '
      'held AS (SELECT FROM ONLY %3$s p WHERE p.%4$I IN (SELECT k.k FROM k) FOR KEY SHARE OF p) '
      'SELECT (SELECT count(*) FROM k) - (SELECT count(*) FROM held)', v_key.col, p_table, v_key.parent, v_key.ref)
    INTO v_missing USING p_after, p_last;
    v_total := v_total + v_missing;
  END LOOP;
  RETURN v_total;
END
$$;

-- One cv_sync_snapshot page from a peer. Pages come table by table in foreign-key order, each
-- table in id order; progress is saved with the rows, so a crash resumes at the next page. The
-- first page's cursor is where the log replay (catch-up) starts; every page raises
-- catchup_until to its own cursor.
-- Pages are read at different moments, so a child copied late can reference a parent created
-- after its table was copied. Such a row is left out of the copy (cv_sync.orphans): its parent
-- was written after the first page's horizon, and so was the child's reference to it, so the
-- catch-up replays both, parent first; the copy is complete once the catch-up passes
-- catchup_until. Foreign keys stay checked throughout, by the table's constraints or, on a first
-- copy in replica mode, once per page before it commits: the copy never commits a dangling
-- reference.
-- A page is checked whole before anything is written (its columns against this table's, in
-- order; each row's id, version and HLC; ids within the page's range) and every row text must
-- parse as this table's row, with the same id and version as beside it: a forged or damaged
-- page is CV005 (CV002 for another column order), never half a page.
-- The first copy of a range goes in set-based: on a clinic server, a page whose id range holds
-- no row and no tombstone here is written with one INSERT … SELECT and its row_state with
-- another (foreign keys checked by the table's own constraints, or once per page and key where
-- cv_sync.enter_copy_mode may set replica mode). Anything else
-- (rows already here, a parent missing, a page applied on the cloud, where what a clinic's node
-- credential sends is judged row by row) goes through the ordinary apply, as a log change does.
CREATE OR REPLACE FUNCTION public.cv_sync_apply_snapshot(p_source jsonb, p_page jsonb) RETURNS jsonb
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER
  SET search_path = ''
  SET datestyle = 'ISO, YMD'
  SET intervalstyle = 'postgres'
  SET extra_float_digits = 3
  SET bytea_output = 'hex'
  SET timezone = 'UTC'
AS $$
DECLARE
  v_table text := p_page ->> 'table';
  v_rows jsonb := p_page -> 'rows';
  v_position smallint;
  v_columns jsonb;
  v_after uuid;
  v_last uuid;
  v_cursor record;
  v_peer cv_sync.peers;
  v_at jsonb;
  v_progress jsonb;
  v_check record;
  v_mismatched bigint;
  v_fast boolean;
  v_written record;
  v_latest record;
  v_copy_mode text;
  v_changes cv_sync.change[];
  v_orphans uuid[];
  v_result jsonb;
BEGIN
  SELECT s.position INTO v_position FROM cv_sync.synced_tables s WHERE s.table_name = v_table;
  IF v_position IS NULL OR jsonb_typeof(v_rows) IS DISTINCT FROM 'array'
    OR jsonb_typeof(p_page -> 'has_more') IS DISTINCT FROM 'boolean'
    OR p_page ->> 'node_id' IS DISTINCT FROM p_source ->> 'node_id'
  THEN
    RAISE EXCEPTION 'p_page must be a cv_sync_snapshot page of the source node (a synced table, rows, has_more, the source''s node_id)'
      USING ERRCODE = 'CV005';
  END IF;
  IF p_page ->> 'format' IS DISTINCT FROM 'row_text' THEN
    RAISE EXCEPTION 'p_page is not in the row_text format of cv_sync_snapshot (format %): the source node''s sql/ functions are older than this node''s',
      coalesce(p_page ->> 'format', 'none')
      USING ERRCODE = 'CV005', HINT = 'apply the same sql/ migrations on both nodes (centrovision-sync cloud migrate on the cloud), then sync again';
  END IF;
  SELECT jsonb_agg(a.attname ORDER BY a.attnum) INTO v_columns FROM pg_catalog.pg_attribute a
  WHERE a.attrelid = format('public.%I', v_table)::regclass AND a.attnum > 0 AND NOT a.attisdropped;
  IF p_page -> 'columns' IS DISTINCT FROM v_columns THEN
    RAISE EXCEPTION 'schema drift: the columns of table % on node % are not those of this node in the same order; nothing was applied',
      v_table, coalesce(p_source ->> 'node_name', p_source ->> 'node_id')
      USING ERRCODE = 'CV002',
        HINT = 'the row texts of an initial sync are positional: create the table on both nodes from the same sql/ migrations, then sync again';
  END IF;
  BEGIN
    v_after := (p_page ->> 'after_id')::uuid;
    v_last := (p_page ->> 'last_id')::uuid;
  EXCEPTION WHEN invalid_text_representation THEN
    RAISE EXCEPTION 'p_page.after_id and p_page.last_id must be uuids or null' USING ERRCODE = 'CV005';
  END;
  -- Each row [id, version, hlc, text], ids distinct and within (after_id, last_id], last_id the
  -- last: judged on the JSON alone, in one pass, before any row text is parsed. An id or version
  -- must read back through uuid as the same text (lowercase, hyphenated), an HLC be 15 digits, a
  -- dot, 10 digits, a dot (cv_sync.hlc_shaped) and such a uuid: casts and string functions, not
  -- regular expressions. A text no uuid reads raises CV005 as well.
  BEGIN
    SELECT count(*) AS total, count(*) FILTER (WHERE e.id IS NULL) AS malformed, count(DISTINCT e.id) AS ids,
      count(*) FILTER (WHERE e.id <= v_after OR e.id > v_last) AS outside, count(*) FILTER (WHERE e.id = v_last) AS at_last
    INTO v_check
    -- OFFSET 0: each item is judged once, not once per aggregate.
    FROM (SELECT CASE WHEN jsonb_typeof(r.value) = 'array' THEN CASE WHEN jsonb_array_length(r.value) = 4
        AND jsonb_typeof(r.value -> 0) = 'string' AND jsonb_typeof(r.value -> 1) = 'string'
        AND jsonb_typeof(r.value -> 2) = 'string' AND jsonb_typeof(r.value -> 3) = 'string'
        AND (r.value ->> 0)::uuid::text = r.value ->> 0 AND (r.value ->> 1)::uuid::text = r.value ->> 1
        AND cv_sync.hlc_shaped(r.value ->> 2) AND right(r.value ->> 2, 36)::uuid::text = right(r.value ->> 2, 36)
      THEN (r.value ->> 0)::uuid END END AS id
      FROM jsonb_array_elements(v_rows) r OFFSET 0) e;
  EXCEPTION WHEN invalid_text_representation THEN
    RAISE EXCEPTION 'p_page.rows must hold [id, version, hlc, row text] items; at least one id, version or HLC is not a uuid'
      USING ERRCODE = 'CV005';
  END;
  IF v_check.malformed > 0 THEN
    RAISE EXCEPTION 'p_page.rows must hold [id, version, hlc, row text] items; % of % do not', v_check.malformed, v_check.total
      USING ERRCODE = 'CV005';
  END IF;
  IF v_check.ids < v_check.total OR v_check.total > 0 AND (v_check.outside > 0 OR v_check.at_last <> 1) THEN
    RAISE EXCEPTION 'p_page.rows must have distinct ids after after_id, the last of them last_id' USING ERRCODE = 'CV005';
  END IF;
  v_cursor := cv_sync.parse_cursor(p_page -> 'cursor', 'p_page.cursor');
  v_peer := cv_sync.lock_peer(p_source);

  v_at := coalesce(v_peer.snapshot_progress, jsonb_build_object(
    'table', (SELECT s.table_name FROM cv_sync.synced_tables s ORDER BY s.position LIMIT 1), 'after_id', NULL, 'done', false));
  IF (v_at ->> 'done')::boolean
    OR (SELECT s.position FROM cv_sync.synced_tables s WHERE s.table_name = v_at ->> 'table') > v_position
    OR (v_at ->> 'table' = v_table AND (v_at ->> 'after_id')::uuid >= v_last)
  THEN
    RETURN jsonb_build_object('status', 'duplicate', 'applied', 0, 'skipped', 0, 'conflicts', 0, 'quarantined', 0,
      'evicted', 0, 'progress', v_at);
  END IF;
  IF v_at ->> 'table' <> v_table OR (v_at ->> 'after_id')::uuid IS DISTINCT FROM v_after THEN
    RAISE EXCEPTION 'the initial sync from peer % stands at % here, this page is % after %', v_peer.peer_id, v_at,
      v_table, coalesce(v_after::text, 'the start')
      USING ERRCODE = 'CV003', HINT = 're-read cv_sync_cursor and continue from its snapshot_progress';
  END IF;
  PERFORM cv_sync.check_fingerprint(p_source, ARRAY[v_table]);

  -- The cloud (no clinic signing key, 0003) keeps scopes and judges a node credential's rows:
  -- always the ordinary apply there.
  v_fast := v_check.total > 0 AND to_regclass('cv_auth.signing_key') IS NOT NULL;
  IF v_fast THEN
    EXECUTE format(
      'SELECT NOT EXISTS (SELECT FROM public.%1$I x WHERE ($1 IS NULL OR x.id > $1) AND x.id <= $2) '
      'AND NOT EXISTS (SELECT FROM cv_sync.row_state s WHERE s.table_name = %1$L '
      '  AND ($1 IS NULL OR s.row_id > $1) AND s.row_id <= $2)', v_table)
    INTO v_fast USING v_after, v_last;
  END IF;
  BEGIN
    IF v_fast THEN
      BEGIN
        PERFORM cv_sync.begin_apply(v_peer.peer_id);
        v_copy_mode := cv_sync.enter_copy_mode(v_table);
        -- MATERIALIZED: each text is parsed once, not once per column of (r.t).*. Plain inserts,
        -- not ON CONFLICT's speculative ones (a tenth of the statement): a row written here
        -- concurrently since the range was found empty raises unique_violation, and the ordinary
        -- apply decides.
        EXECUTE format($sql$
          WITH r AS MATERIALIZED (
            SELECT (e ->> 0)::uuid AS id, (e ->> 1)::uuid AS version, e ->> 2 AS hlc, (e ->> 3)::public.%1$I AS t
            FROM jsonb_array_elements($1) e
          ), written AS (
            INSERT INTO public.%1$I SELECT (r.t).* FROM r RETURNING 1
          ), stated AS (
            INSERT INTO cv_sync.row_state (table_name, row_id, version, hlc, origin)
            SELECT %1$L, r.id, r.version, r.hlc, right(r.hlc, 36)::uuid FROM r
          )
          SELECT (SELECT count(*) FROM written) AS rows,
            a.mismatched, a.hlc, a.updated_at, a.created_at
          FROM (SELECT count(*) FILTER (WHERE (r.t).id IS DISTINCT FROM r.id OR (r.t).version IS DISTINCT FROM r.version) AS mismatched,
              max(r.hlc COLLATE "C") AS hlc, max((r.t).updated_at) AS updated_at, max((r.t).created_at) AS created_at FROM r) a
        $sql$, v_table) INTO v_written USING v_rows;
        IF v_written.mismatched > 0 THEN
          RAISE EXCEPTION '% row text(s) of p_page name another id or version than beside them', v_written.mismatched
            USING ERRCODE = 'CV005';
        END IF;
        IF v_copy_mode IS NOT NULL THEN
          IF cv_sync.copy_missing_references(v_table, v_after, v_last) > 0 THEN
            RAISE EXCEPTION 'rows of % reference rows missing here', v_table USING ERRCODE = 'foreign_key_violation';
          END IF;
          PERFORM pg_catalog.set_config('session_replication_role', v_copy_mode, true);
        END IF;
        -- The latest of the page's times, checked as the ordinary apply checks a batch's (in "C"
        -- order an HLC's text sorts as its time: its digits are fixed-width).
        SELECT * INTO v_latest FROM cv_sync.latest_time(cv_sync.hlc_physical(v_written.hlc), v_written.updated_at,
          v_written.created_at);
        PERFORM cv_sync.check_change_time(v_table, v_latest.what, v_latest.at);
        PERFORM cv_sync.end_apply();
        v_result := jsonb_build_object('applied', v_written.rows, 'skipped', 0, 'conflicts', 0, 'quarantined', 0, 'evicted', 0);
      EXCEPTION WHEN foreign_key_violation OR unique_violation THEN
        -- A parent missing (created at the source after its table was copied), or another unique
        -- key taken: rolled back to before the page; the ordinary apply leaves out the orphans
        -- and names the duplicate.
        v_fast := false;
      END;
    END IF;
    IF NOT v_fast THEN
      EXECUTE format(
        'SELECT array_agg(ROW(%1$L, r.id, ''upsert'', to_jsonb(r.t), r.version, NULL, right(r.hlc, 36)::uuid, r.hlc, '
        '  NULL, NULL, NULL)::cv_sync.change ORDER BY r.id), '
        '  count(*) FILTER (WHERE (r.t).id IS DISTINCT FROM r.id OR (r.t).version IS DISTINCT FROM r.version) '
        'FROM (SELECT (e ->> 0)::uuid AS id, (e ->> 1)::uuid AS version, e ->> 2 AS hlc, (e ->> 3)::public.%1$I AS t '
        '  FROM jsonb_array_elements($1) e OFFSET 0) r', v_table)
      INTO v_changes, v_mismatched USING v_rows;
      IF v_mismatched > 0 THEN
        RAISE EXCEPTION '% row text(s) of p_page name another id or version than beside them', v_mismatched
          USING ERRCODE = 'CV005';
      END IF;
      v_changes := coalesce(v_changes, '{}');
      PERFORM cv_sync.check_changes_clock(v_changes);
      PERFORM cv_sync.begin_apply(v_peer.peer_id);
      BEGIN
        v_result := cv_sync.apply_changes(v_peer.peer_id, v_changes, true, false);
      EXCEPTION WHEN foreign_key_violation THEN
        -- Rare (a page read while the source was creating parents): only then look for the orphans.
        v_orphans := cv_sync.orphans(v_table, v_changes);
        v_result := cv_sync.apply_changes(v_peer.peer_id,
          ARRAY(SELECT c FROM unnest(v_changes) c WHERE c.row_id <> ALL (v_orphans)), true, false);
      END;
      PERFORM cv_sync.end_apply();
    END IF;
  EXCEPTION WHEN data_exception THEN
    -- Not SQLERRM: it quotes the value, and a row is a patient's.
    RAISE EXCEPTION 'a row text of p_page does not read as a row of public.% (SQLSTATE %); nothing was applied', v_table, SQLSTATE
      USING ERRCODE = 'CV005';
  END;

  v_progress := CASE
    WHEN (p_page -> 'has_more')::boolean THEN jsonb_build_object('table', v_table, 'after_id', v_last, 'done', false)
    ELSE coalesce(
      (SELECT jsonb_build_object('table', s.table_name, 'after_id', NULL, 'done', false) FROM cv_sync.synced_tables s
       WHERE s.position > v_position ORDER BY s.position LIMIT 1),
      jsonb_build_object('table', v_table, 'after_id', v_last, 'done', true)) END;
  UPDATE cv_sync.peers p SET
    snapshot_progress = v_progress,
    cursor_txid = CASE WHEN p.snapshot_progress IS NULL THEN v_cursor.txid ELSE p.cursor_txid END,
    cursor_seq = CASE WHEN p.snapshot_progress IS NULL THEN v_cursor.seq ELSE p.cursor_seq END,
    catchup_txid = CASE WHEN p.catchup_txid IS NULL OR (v_cursor.txid, v_cursor.seq) > (p.catchup_txid, p.catchup_seq)
      THEN v_cursor.txid ELSE p.catchup_txid END,
    catchup_seq = CASE WHEN p.catchup_txid IS NULL OR (v_cursor.txid, v_cursor.seq) > (p.catchup_txid, p.catchup_seq)
      THEN v_cursor.seq ELSE p.catchup_seq END,
    peer_name = coalesce(p_source ->> 'node_name', p.peer_name), fingerprint = p_source -> 'fingerprint', updated_at = now()
  WHERE p.peer_id = v_peer.peer_id;
  RETURN v_result || jsonb_build_object('status', 'applied', 'progress', v_progress,
    'deferred', coalesce(cardinality(v_orphans), 0));
END
$$;

-- A function this file created for the first time would be PUBLIC's to call: taken back (and
-- the RPC functions' grants kept) as at the end of every sync migration.
CALL cv_sync.grant_rpc();

-- sql/functions/07_wakeups.sql
-- The cloud's wake-ups (sql/0016) name, besides the origins, the scopes of what the statement
-- added (`scopes`: the branches whose clinic servers hold the rows before or after, with
-- cv_sync.everywhere() for rows every clinic holds), so a clinic server wakes only for changes a
-- pull would bring it: fifty clinics no longer all start a cycle for every write anywhere. More
-- than 200 scopes in one statement are sent as null (unknown: every clinic wakes). Like the
-- origins, the scopes name branches, never a row or a table.
CREATE OR REPLACE FUNCTION cv_sync.wake_nodes() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = ''
AS $$
DECLARE
  v_scopes uuid[];
BEGIN
  -- A statement trigger fires for an INSERT … SELECT that added nothing, too.
  IF NOT EXISTS (SELECT 1 FROM added) THEN
    RETURN NULL;
  END IF;
  SELECT coalesce(array_agg(DISTINCT s.branch), '{}') INTO v_scopes
  FROM added a CROSS JOIN LATERAL unnest(coalesce(a.scope, '{}') || coalesce(a.scope_before, '{}')) AS s(branch);
  PERFORM realtime.send(
    jsonb_build_object(
      'origins', (SELECT jsonb_agg(DISTINCT a.origin) FROM added a),
      'scopes', CASE WHEN cardinality(v_scopes) <= 200 THEN to_jsonb(v_scopes) END),
    'changes', 'cv_sync', true);
  RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION cv_sync.wake_nodes() FROM PUBLIC;

-- sql/functions/08_positional.sql
-- The positional batch: cv_sync_apply's p_changes with each table's columns named once and each
-- row sent as its values in that order, the metadata a change repeats (its row id, its origin,
-- its author) sent once or derived (PROTOCOL.md "cv_sync_apply"). Over the internet a clinic's
-- upload is not compressed by the transport (PostgREST takes request bodies as they come), so
-- this is what a change costs its upload link:
--   {"format": "positional",
--    "tables": [{"name": <table>, "columns": [<column>, ...]}, ...],
--    "authors": [<author>, ...],
--    "changes": [[<table>, op, [<value>, ...], version, base_version, hlc, changed_columns, resolves, <author>, seq], ...]}
-- <table> and <author> index `tables` and `authors` from 0 (<author> null when no signed-in
-- person made the change); row_id is the row's id and origin the node that ends its hlc. The
-- values are the JSON of the array form, moved and not converted: read, the batch is the array
-- of changes the sender held, so collapse() checks and applies it as it does that array.

-- A positional batch's entries, typed, in batch order, as collapse() reads the array form's
-- (row_id the row's id, origin the node ending the hlc): `seqs` beside `entries`, and the first
-- entry that is not [table, op, values, version, base_version, hlc, changed_columns, resolves,
-- author, seq] with a table of `tables` (distinct columns, a value for each) and an author of
-- `authors` or null. Read straight from the batch: building the array form first and reading that
-- took three times as long as reading the array form sent as text. Each row's object is built by
-- one jsonb_build_object per table, its keys the table's columns (literals of a statement made for
-- this batch): an aggregate per row over its values took 45 of the 2,000-change page's 240 ms on
-- the cloud.
CREATE OR REPLACE FUNCTION cv_sync.positional_entries(p_batch jsonb, OUT entries cv_sync.change[], OUT seqs bigint[],
  OUT bad bigint)
  LANGUAGE plpgsql IMMUTABLE
  SET search_path = ''
AS $$
DECLARE
  v_tables jsonb;
  v_objects text;
BEGIN
  IF jsonb_typeof(p_batch -> 'tables') IS DISTINCT FROM 'array'
    OR jsonb_typeof(p_batch -> 'changes') IS DISTINCT FROM 'array'
    OR jsonb_typeof(coalesce(p_batch -> 'authors', '[]')) IS DISTINCT FROM 'array' THEN
    RAISE EXCEPTION 'p_changes in the positional form needs "tables" and "changes" arrays, and "authors" an array when present'
      USING ERRCODE = 'CV005';
  END IF;
  -- Each table: its index, name, columns, where its id is, and whether its columns are distinct.
  SELECT coalesce(jsonb_agg(jsonb_build_object('idx', x.i - 1, 'name', x.e ->> 'name', 'columns', c.columns,
      'id_at', array_position(c.columns, 'id') - 1,
      'distinct', cardinality(c.columns) = (SELECT count(DISTINCT n) FROM unnest(c.columns) n)
        AND array_position(c.columns, NULL) IS NULL)), '[]')
  INTO v_tables
  FROM jsonb_array_elements(p_batch -> 'tables') WITH ORDINALITY x(e, i)
  CROSS JOIN LATERAL (SELECT ARRAY(SELECT jsonb_array_elements_text(x.e -> 'columns'))) c(columns);
  -- The row object of an entry of each table with distinct columns, from its values (e.c -> 2):
  -- at most 50 pairs per jsonb_build_object (100 arguments), joined with || beyond that.
  SELECT string_agg(format('WHEN %s THEN %s', t.e ->> 'idx', o.built), ' ')
  INTO v_objects
  FROM jsonb_array_elements(v_tables) t(e)
  CROSS JOIN LATERAL (
    SELECT coalesce(string_agg(format('jsonb_build_object(%s)', g.pairs), ' || ' ORDER BY g.part), '''{}''::jsonb') AS built
    FROM (SELECT (k.i - 1) / 50 AS part, string_agg(format('%L, e.c #> ''{2,%s}''', k.name, k.i - 1), ', ' ORDER BY k.i) AS pairs
      FROM jsonb_array_elements_text(t.e -> 'columns') WITH ORDINALITY k(name, i) GROUP BY (k.i - 1) / 50) g
  ) o
  WHERE (t.e ->> 'distinct')::boolean;
  EXECUTE format($sql$
    WITH t AS (
      SELECT (x ->> 'idx')::integer AS idx, x ->> 'name' AS name,
        ARRAY(SELECT jsonb_array_elements_text(x -> 'columns')) AS columns, (x ->> 'id_at')::integer AS id_at,
        (x ->> 'distinct')::boolean AS distinct_columns
      FROM jsonb_array_elements($2) x
    )
    SELECT
      array_agg(ROW(t.name, (e.c -> 2 ->> t.id_at)::uuid, e.c ->> 1,
          CASE WHEN jsonb_typeof(e.c -> 2) = 'array' THEN CASE t.idx %s END END, (e.c ->> 3)::uuid,
          (e.c ->> 4)::uuid, right(e.c ->> 5, 36)::uuid, e.c ->> 5,
          CASE WHEN jsonb_typeof(e.c -> 6) = 'array' THEN ARRAY(SELECT jsonb_array_elements_text(e.c -> 6)) END,
          (e.c ->> 7)::uuid, $1 -> 'authors' -> ((e.c ->> 8)::integer))::cv_sync.change
        ORDER BY e.n),
      array_agg((e.c ->> 9)::bigint ORDER BY e.n),
      min(e.n) FILTER (WHERE jsonb_typeof(e.c) IS DISTINCT FROM 'array' OR jsonb_array_length(e.c) <> 10
        OR t.name IS NULL OR NOT t.distinct_columns
        OR jsonb_typeof(e.c -> 2) IS DISTINCT FROM 'array' OR jsonb_array_length(e.c -> 2) <> cardinality(t.columns)
        OR jsonb_typeof(e.c -> 6) NOT IN ('array', 'null')
        OR (jsonb_typeof(e.c -> 8) IS DISTINCT FROM 'null'
          AND ((e.c ->> 8)::integer < 0 OR $1 -> 'authors' -> ((e.c ->> 8)::integer) IS NULL)))
    FROM jsonb_array_elements($1 -> 'changes') WITH ORDINALITY e(c, n)
    LEFT JOIN t ON jsonb_typeof(e.c -> 0) = 'number' AND t.idx = (e.c ->> 0)::integer
  $sql$, coalesce(v_objects, 'WHEN NULL THEN NULL')) INTO entries, seqs, bad USING p_batch, v_tables;
END
$$;
REVOKE ALL ON FUNCTION cv_sync.positional_entries(jsonb) FROM PUBLIC;

-- 0007's, taking the positional form too, and reading either form once: its entries, typed, then
-- one change per row from them. Every entry is checked (0007 checked each row's last); a batch
-- that holds each row once, as most do, is its own collapse and skips the grouping. An HLC must
-- be digits where its two numbers are (cv_sync.hlc_shaped): its time is read as a bigint, which
-- also takes '9_9_9' or '0x1f' as a time in 1970, past the clock bound, while as text such a
-- stamp sorts after every real one and would win every conflict, and the engine refuses it in
-- the log it pulls.
CREATE OR REPLACE FUNCTION cv_sync.collapse(p_changes jsonb) RETURNS cv_sync.change[]
  LANGUAGE plpgsql STABLE
  SET search_path = ''
AS $$
DECLARE
  v_entries cv_sync.change[];
  v_seqs bigint[];
  v_result cv_sync.change[];
  v_bad bigint;
  v_once boolean;
  v_positional boolean := jsonb_typeof(p_changes) = 'object' AND p_changes ->> 'format' = 'positional';
BEGIN
  IF NOT v_positional AND jsonb_typeof(p_changes) IS DISTINCT FROM 'array' THEN
    RAISE EXCEPTION 'p_changes must be a JSON array of changes, or a batch {"format": "positional", ...}' USING ERRCODE = 'CV005';
  END IF;
  BEGIN
    IF v_positional THEN
      SELECT p.entries, p.seqs, p.bad INTO v_entries, v_seqs, v_bad FROM cv_sync.positional_entries(p_changes) p;
      IF v_bad IS NOT NULL THEN
        RAISE EXCEPTION 'positional change #% is not [table, op, values, version, base_version, hlc, changed_columns, resolves, author, seq] with a table of "tables" (distinct columns, a value for each) and an author of "authors" or null',
          v_bad USING ERRCODE = 'CV005';
      END IF;
    ELSE
      SELECT array_agg(ROW(w.table_name, w.row_id, w.op, w.row_data, w.version, w.base_version, w.origin, w.hlc,
            w.changed_columns, w.resolves, w.author)::cv_sync.change ORDER BY w.ord),
        array_agg(w.seq ORDER BY w.ord)
      INTO v_entries, v_seqs
      FROM ROWS FROM (jsonb_to_recordset(p_changes)
          AS ("table" text, row_id uuid, op text, "row" jsonb, version uuid, base_version uuid, origin uuid, hlc text,
            changed_columns text[], resolves uuid, author jsonb, seq bigint))
        WITH ORDINALITY AS w(table_name, row_id, op, row_data, version, base_version, origin, hlc, changed_columns,
          resolves, author, seq, ord);
    END IF;
    SELECT min(w.ord) FILTER (WHERE s.table_name IS NULL OR w.row_id IS NULL OR w.version IS NULL OR w.origin IS NULL
        OR w.op IS NULL OR w.op NOT IN ('upsert', 'delete', 'evict')
        OR NOT cv_sync.hlc_shaped(w.hlc) OR right(w.hlc, 36) <> w.origin::text
        OR jsonb_typeof(w.row_data) IS DISTINCT FROM 'object' OR (w.row_data ->> 'id')::uuid IS DISTINCT FROM w.row_id),
      count(*) = count(DISTINCT (w.table_name, w.row_id))
    INTO v_bad, v_once
    FROM unnest(v_entries) WITH ORDINALITY AS w(table_name, row_id, op, row_data, version, base_version, origin, hlc,
      changed_columns, resolves, author, ord)
    LEFT JOIN cv_sync.synced_tables s ON s.table_name = w.table_name;
    -- Each row once (a page of new rows, most pages): every entry is its row's collapsed change.
    IF v_once OR v_bad IS NOT NULL THEN
      v_result := v_entries;
    ELSE
      WITH n AS (
        SELECT * FROM unnest(v_entries, v_seqs) WITH ORDINALITY AS n(table_name, row_id, op, row_data, version,
          base_version, origin, hlc, changed_columns, resolves, author, seq, ord)
      ), per_row AS (
        SELECT n.table_name, n.row_id, count(*) AS entries,
          (array_agg(n.ord ORDER BY n.seq DESC, n.ord DESC))[1] AS last_ord,
          (array_agg(n.base_version ORDER BY n.seq, n.ord))[1] AS base_version,
          bool_or(n.changed_columns IS NULL) AS all_columns,
          (array_agg(n.resolves ORDER BY n.seq DESC, n.ord DESC) FILTER (WHERE n.resolves IS NOT NULL))[1] AS resolves
        FROM n GROUP BY n.table_name, n.row_id
      ), columns_changed AS (
        SELECT n.table_name, n.row_id, array_agg(DISTINCT c.name ORDER BY c.name) AS names
        FROM n JOIN per_row r ON r.table_name = n.table_name AND r.row_id = n.row_id AND r.entries > 1
        CROSS JOIN LATERAL unnest(n.changed_columns) AS c(name)
        GROUP BY n.table_name, n.row_id
      )
      SELECT array_agg(ROW(w.table_name, w.row_id, w.op, w.row_data, w.version, r.base_version, w.origin, w.hlc,
          CASE WHEN r.all_columns THEN NULL WHEN r.entries = 1 THEN w.changed_columns ELSE coalesce(c.names, '{}') END,
          r.resolves, w.author)::cv_sync.change)
      INTO v_result
      FROM unnest(v_entries) WITH ORDINALITY AS w(table_name, row_id, op, row_data, version, base_version, origin, hlc,
        changed_columns, resolves, author, ord)
      JOIN per_row r ON r.last_ord = w.ord
      LEFT JOIN columns_changed c ON c.table_name = w.table_name AND c.row_id = w.row_id;
    END IF;
  -- Neither message quotes the change, nor SQLERRM, which quotes the value it could not read:
  -- either may be a patient's.
  EXCEPTION WHEN invalid_text_representation OR invalid_parameter_value OR datatype_mismatch OR data_exception THEN
    RAISE EXCEPTION 'p_changes holds a malformed change: a field is not of its type (SQLSTATE %); nothing was applied',
      SQLSTATE USING ERRCODE = 'CV005';
  END;
  IF v_bad IS NOT NULL THEN
    RAISE EXCEPTION 'change #% is not a valid change of a synced table (its table, row id, version, origin, op, an HLC of 15 digits, a dot, 10 digits, a dot and the origin, and a row object of that id); nothing was applied',
      v_bad USING ERRCODE = 'CV005';
  END IF;
  RETURN coalesce(v_result, '{}');
END
$$;

-- sql/functions/09_deflated.sql
-- The deflated batch (packages/sync-engine/PROTOCOL.md "cv_sync_apply_deflated"): a clinic
-- server's upload, compressed. PostgREST takes a request body as sent and Supabase's gateway
-- does not decompress one, so what a clinic uploads is compressed inside the body: the
-- arguments of cv_sync_apply as JSON, in an OpenPGP message (RFC 4880) whose data is deflated,
-- because the only decompressor in a Supabase database is pgcrypto's OpenPGP reader (zlib). The
-- message is sealed with a passphrase everyone knows, 'centrovision-sync': it is a container,
-- not a secret (TLS protects the request; the node credential authorises it).

-- Where pgcrypto is: `extensions` on Supabase, `cv_crypto` elsewhere (0011, 0018); NULL without it.
CREATE OR REPLACE FUNCTION cv_sync.pgcrypto_schema() RETURNS name
  LANGUAGE sql STABLE
  SET search_path = ''
  RETURN (SELECT n.nspname FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
    WHERE e.extname = 'pgcrypto');
REVOKE ALL ON FUNCTION cv_sync.pgcrypto_schema() FROM PUBLIC;

-- The bytes of the OpenPGP message p_message, decompressed; NULL when they are no such message
-- (or this pgcrypto has no zlib). Only for the SECURITY DEFINER functions below: pgcrypto's
-- schema is no API role's.
CREATE OR REPLACE FUNCTION cv_sync.inflate(p_message bytea) RETURNS bytea
  LANGUAGE plpgsql VOLATILE
  SET search_path = ''
AS $$
DECLARE
  v_schema name := cv_sync.pgcrypto_schema();
  v_data bytea;
BEGIN
  IF v_schema IS NULL THEN
    RETURN NULL;
  END IF;
  -- pgcrypto reports a damaged or foreign message, and a compression it was built without, as
  -- external_routine_invocation_exception, its messages fixed sentences.
  EXECUTE format('SELECT %I.pgp_sym_decrypt_bytea($1, $2)', v_schema) INTO v_data
    USING p_message, 'centrovision-sync';
  RETURN v_data;
EXCEPTION WHEN external_routine_invocation_exception THEN
  RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION cv_sync.inflate(bytea) FROM PUBLIC;

-- Whether this database reads a deflated batch: pgcrypto is there, and built with zlib.
CREATE OR REPLACE FUNCTION cv_sync.inflates() RETURNS boolean
  LANGUAGE plpgsql VOLATILE
  SET search_path = ''
AS $$
DECLARE
  v_schema name := cv_sync.pgcrypto_schema();
  v_message bytea;
BEGIN
  IF v_schema IS NULL THEN
    RETURN false;
  END IF;
  EXECUTE format('SELECT %I.pgp_sym_encrypt_bytea($1, $2, $3)', v_schema) INTO v_message
    USING '\x7b7d'::bytea, 'centrovision-sync', 'compress-algo=1, s2k-mode=0, cipher-algo=aes128';
  RETURN cv_sync.inflate(v_message) = '\x7b7d'::bytea;
EXCEPTION WHEN external_routine_invocation_exception THEN
  RETURN false;
END
$$;
REVOKE ALL ON FUNCTION cv_sync.inflates() FROM PUBLIC;

-- cv_sync_apply with its arguments in one deflated batch: the whole request body
-- (Content-Type: application/octet-stream, PostgREST's single unnamed bytea parameter), the
-- OpenPGP message of the JSON {p_source, p_expected, p_cursor, p_changes[, p_catchup]}. At most
-- 256 KiB: zlib expands a body at most about 1,000-fold, so a forged one makes this backend hold
-- at most about 260 MB before cv_sync_apply judges it; the engine sends a larger batch
-- uncompressed. The caller is checked before anything is decompressed. What is not such a
-- batch is CV005, nothing applied.
CREATE OR REPLACE FUNCTION public.cv_sync_apply_deflated(bytea) RETURNS jsonb
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER
  SET search_path = ''
AS $$
DECLARE
  v_data bytea;
  v_call jsonb;
BEGIN
  PERFORM cv_sync.require_node(NULL);
  IF $1 IS NULL OR octet_length($1) > 262144 THEN
    RAISE EXCEPTION 'a deflated batch must be 1 to 262144 bytes long, this one is % bytes', coalesce(octet_length($1), 0)
      USING ERRCODE = 'CV005', HINT = 'send a larger batch to cv_sync_apply, uncompressed';
  END IF;
  v_data := cv_sync.inflate($1);
  IF v_data IS NULL THEN
    RAISE EXCEPTION 'the body is not a deflated batch (an OpenPGP message sealed with ''centrovision-sync'', its data deflated), or this database''s pgcrypto cannot decompress it'
      USING ERRCODE = 'CV005', HINT = 'send the batch to cv_sync_apply, uncompressed';
  END IF;
  BEGIN
    v_call := convert_from(v_data, 'UTF8')::jsonb;
  EXCEPTION WHEN data_exception THEN
    v_call := NULL;
  END;
  IF jsonb_typeof(v_call) IS DISTINCT FROM 'object' OR NOT v_call ?& ARRAY['p_source', 'p_expected', 'p_cursor', 'p_changes']
    OR jsonb_typeof(coalesce(v_call -> 'p_catchup', 'false')) <> 'boolean'
  THEN
    RAISE EXCEPTION 'a deflated batch must hold a JSON object of cv_sync_apply''s arguments (p_source, p_expected, p_cursor, p_changes, p_catchup)'
      USING ERRCODE = 'CV005';
  END IF;
  RETURN public.cv_sync_apply(v_call -> 'p_source', v_call -> 'p_expected', v_call -> 'p_cursor',
    v_call -> 'p_changes', coalesce((v_call -> 'p_catchup')::boolean, false));
END
$$;

-- The sync role, the service key and, on the cloud, a clinic server's node credential
-- (cv_sync.require_node checks it inside), as cv_sync_apply's (00_grant_rpc.sql).
CALL cv_sync.grant_rpc();

-- 0017's, saying which forms of p_changes this node's cv_sync_apply takes (`apply_formats`): an
-- engine sends the positional batch only to a node that lists it, and the deflated batch only to
-- one that lists `deflated` (cv_sync_apply_deflated, where pgcrypto decompresses).
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
          OR q.source = (SELECT c.node_id FROM cv_sync.clinic_nodes c WHERE c.user_id = auth.uid())),
      'apply_formats', CASE WHEN cv_sync.inflates() THEN jsonb_build_array('array', 'positional', 'deflated')
        ELSE jsonb_build_array('array', 'positional') END)
    FROM cv_sync.node n
  );
END
$$;

-- sql/functions/10_pull.sql
-- A page of a node's log for a consumer (0006's cv_sync_pull; packages/sync-engine/PROTOCOL.md
-- "cv_sync_pull"), as a set of json values: first the page's header
--   {node_id, epoch, fingerprint, now, cursor, has_more, end_marker: true}
-- then its changes in (txid, seq) order, in chunks of 100 (more when the page could otherwise
-- need over 998 chunks), then an empty chunk, the end marker. PostgREST sends the set as one
-- array, [header, chunk, …, []], capped at db-max-rows (Supabase's 1000, which a project's owner
-- may lower; a page is at most 2 × p_limit changes, its last transaction read whole): cut there,
-- it arrives without its marker, and the engine refuses it instead of moving its cursor past the
-- changes it lost. An engine older than the marker reads it as a chunk of no change. A set, not
-- one json value: behind PostgREST a scalar result
-- is aggregated and parsed again (json_agg(…)->0), and each copy of a page of several megabytes,
-- in the function and around it, took fresh memory; chunks are reused.

-- Until December 2026 it returned the page as one json value. A function's return type cannot be
-- replaced, only dropped with the function; the grants come back with cv_sync.grant_rpc() at the
-- end of this file, in the same transaction.
DO $$
BEGIN
  IF (SELECT NOT p.proretset FROM pg_catalog.pg_proc p
      WHERE p.oid = pg_catalog.to_regprocedure('public.cv_sync_pull(uuid, jsonb, integer)')) THEN
    DROP FUNCTION public.cv_sync_pull(uuid, jsonb, integer);
  END IF;
END
$$;

-- STABLE, as before: every statement reads the caller's snapshot, so the page's end, has_more and
-- its changes agree.
CREATE OR REPLACE FUNCTION public.cv_sync_pull(
  p_consumer uuid,
  p_after jsonb DEFAULT '{"txid": 0, "seq": 0}',
  p_limit integer DEFAULT 1000
) RETURNS SETOF json
  LANGUAGE plpgsql STABLE SECURITY DEFINER
  SET search_path = ''
AS $$
DECLARE
  v_after record;
  v_horizon bigint := cv_sync.horizon();
  v_end_txid xid8;
  v_end_seq bigint;
  v_has_more boolean := false;
  v_held uuid[];
BEGIN
  IF p_consumer IS NULL THEN
    RAISE EXCEPTION 'p_consumer (the pulling node id) is required' USING ERRCODE = 'CV005';
  END IF;
  PERFORM cv_sync.require_node(NULL);
  v_held := cv_sync.node_scope();
  -- At most the engine's largest page (maxPageSize): a credential asking for more would have one
  -- statement build a page of any size in this server's memory until statement_timeout.
  IF p_limit IS NULL OR p_limit < 1 OR p_limit > 200000 THEN
    RAISE EXCEPTION 'p_limit must be a number from 1 to 200000, got %', p_limit USING ERRCODE = 'CV005';
  END IF;
  v_after := cv_sync.parse_cursor(p_after, 'p_after');
  PERFORM cv_sync.check_not_ahead(v_after.txid, 'p_after');

  WITH page AS (
    SELECT l.txid, l.seq FROM cv_sync.change_log l
    WHERE (l.txid, l.seq) > (v_after.txid::text::xid8, v_after.seq) AND l.txid < v_horizon::text::xid8
    ORDER BY l.txid, l.seq
    LIMIT p_limit
  ), last_entry AS (
    SELECT p.txid, p.seq FROM page p ORDER BY p.txid DESC, p.seq DESC LIMIT 1
  ), rest_of_transaction AS (
    SELECT l.txid, l.seq FROM cv_sync.change_log l, last_entry e
    WHERE (SELECT count(*) FROM page) = p_limit AND l.txid = e.txid AND l.seq > e.seq
    ORDER BY l.seq
    LIMIT p_limit
  ), scanned AS (
    SELECT * FROM page UNION ALL SELECT * FROM rest_of_transaction
  )
  SELECT s.txid, s.seq INTO v_end_txid, v_end_seq FROM scanned s ORDER BY s.txid DESC, s.seq DESC LIMIT 1;

  IF v_end_txid IS NOT NULL THEN
    v_has_more := EXISTS (
      SELECT FROM cv_sync.change_log l
      WHERE (l.txid, l.seq) > (v_end_txid, v_end_seq) AND l.txid < v_horizon::text::xid8);
  END IF;

  RETURN NEXT (
    SELECT json_build_object(
      'node_id', n.node_id, 'epoch', n.epoch, 'fingerprint', cv_sync.fingerprint(), 'now', clock_timestamp(),
      'cursor', CASE WHEN v_has_more THEN cv_sync.cursor_json(v_end_txid::text::bigint, v_end_seq)
                     ELSE cv_sync.cursor_json(greatest(v_horizon, v_after.txid), CASE WHEN v_horizon > v_after.txid THEN 0 ELSE v_after.seq END) END,
      'has_more', v_has_more, 'end_marker', true)
    FROM cv_sync.node n
  );
  IF v_end_txid IS NULL THEN
    RETURN NEXT '[]'::json;
    RETURN;
  END IF;
  RETURN QUERY
    SELECT json_agg(c.change ORDER BY c.n) FROM (
      SELECT row_number() OVER (ORDER BY l.txid, l.seq) AS n, json_build_object(
        'table', l.table_name, 'row_id', l.row_id, 'op', s.op,
        'row', CASE WHEN s.op = 'evict' THEN jsonb_build_object('id', l.row_id) ELSE l.row_data END, 'version', l.version,
        'base_version', CASE WHEN s.op <> 'evict' THEN l.base_version END, 'origin', l.origin, 'hlc', l.hlc,
        'changed_columns', l.changed_columns, 'resolves', l.resolves, 'author', l.author,
        'txid', l.txid::text::bigint, 'seq', l.seq) AS change
      FROM cv_sync.change_log l
      CROSS JOIN LATERAL (SELECT cv_sync.op_for(l.op, l.scope, l.scope_before, v_held) AS op) s
      WHERE (l.txid, l.seq) > (v_after.txid::text::xid8, v_after.seq) AND (l.txid, l.seq) <= (v_end_txid, v_end_seq)
        AND s.op IS NOT NULL
        AND (l.op = 'rescope' OR l.origin <> p_consumer AND l.received_from IS DISTINCT FROM p_consumer)) c
    GROUP BY (c.n - 1) / greatest(100, 2 * p_limit::bigint / 998 + 1) ORDER BY min(c.n);
  RETURN NEXT '[]'::json;
END
$$;

-- A function this file created for the first time would be PUBLIC's to call: taken back (and
-- the RPC functions' grants kept) as at the end of every sync migration.
CALL cv_sync.grant_rpc();

-- sql/functions/11_restamp.sql
-- Re-stamping this node's changes made while its clock ran far ahead (packages/sync-engine/
-- PROTOCOL.md "Bounded clocks"). A server whose clock jumped ahead for a while (a dead CMOS
-- battery, a wrong NTP server) stamped what it captured meanwhile that far ahead: the changes'
-- HLCs and the rows' updated_at and created_at. Its peer refuses them (CV009) until the peer's own
-- clock reaches them, and every later change of this node waits behind them: for a stamp in 9999,
-- for good. Once this node's clock is right again, this gives those changes the time it is now
-- (the time they are sent: when they were really made is not known), in their order, and lowers
-- hlc_floor if an apply raised it that far ahead, so later stamps are right again. Only this
-- node's own changes, and only those later than its clock plus max_clock_skew: no peer with a
-- right clock has accepted them, so none holds the old stamps. While the clock is still ahead,
-- nothing is ahead of it and nothing changes. The rows keep their versions; they are written as
-- a sync apply of this node (neither stamped again nor captured again).
-- Returns the number of log entries re-stamped.
CREATE OR REPLACE FUNCTION public.cv_sync_restamp_ahead() RETURNS bigint
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER
  SET search_path = ''
AS $$
DECLARE
  v_node cv_sync.node;
  v_now timestamptz := pg_catalog.date_trunc('milliseconds', pg_catalog.clock_timestamp());
  v_limit timestamptz := cv_sync.clock_limit();
  v_limit_hlc text;
  v_txids xid8[];
  v_seqs bigint[];
  v_table text;
BEGIN
  PERFORM cv_sync.require_node(NULL);
  -- The HLC floor's row, as an apply takes it: no apply raises the floor meanwhile.
  SELECT * INTO v_node FROM cv_sync.node n FOR UPDATE;
  v_limit_hlc := pg_catalog.lpad(pg_catalog.floor(EXTRACT(EPOCH FROM v_limit) * 1000)::bigint::text, 15, '0');
  IF v_node.hlc_floor > EXTRACT(EPOCH FROM v_limit) * 1000 THEN
    v_node.hlc_floor := pg_catalog.floor(EXTRACT(EPOCH FROM v_now) * 1000)::bigint;
    UPDATE cv_sync.node n SET hlc_floor = v_node.hlc_floor WHERE n.singleton;
  END IF;
  SELECT array_agg(l.txid ORDER BY l.txid, l.seq), array_agg(l.seq ORDER BY l.txid, l.seq)
  INTO v_txids, v_seqs
  FROM cv_sync.change_log l
  WHERE l.origin = v_node.node_id
    AND (left(l.hlc, 15) > v_limit_hlc OR (l.row_data ->> 'updated_at')::timestamptz > v_limit
      OR (l.row_data ->> 'created_at')::timestamptz > v_limit);
  IF v_txids IS NULL THEN
    RETURN 0;
  END IF;
  -- New stamps in log order (unnest's): the logical part, one sequence, keeps that order.
  WITH stamped AS (
    SELECT u.txid, u.seq, cv_sync.hlc(v_node.hlc_floor, v_node.node_id) AS hlc
    FROM unnest(v_txids, v_seqs) u(txid, seq)
  )
  UPDATE cv_sync.change_log l SET hlc = s.hlc,
    row_data = l.row_data
      || CASE WHEN (l.row_data ->> 'updated_at')::timestamptz > v_limit
           THEN jsonb_build_object('updated_at', v_now) ELSE '{}' END
      || CASE WHEN (l.row_data ->> 'created_at')::timestamptz > v_limit
           THEN jsonb_build_object('created_at', v_now) ELSE '{}' END
  FROM stamped s WHERE l.txid = s.txid AND l.seq = s.seq;
  -- The rows whose last entry that was: their state's HLC, and their times.
  UPDATE cv_sync.row_state s SET hlc = l.hlc
  FROM unnest(v_txids, v_seqs) u(txid, seq) JOIN cv_sync.change_log l ON l.txid = u.txid AND l.seq = u.seq
  WHERE s.table_name = l.table_name AND s.row_id = l.row_id AND s.txid = l.txid AND s.seq = l.seq;
  PERFORM cv_sync.begin_apply(v_node.node_id);
  FOR v_table IN SELECT DISTINCT l.table_name FROM cv_sync.change_log l
    JOIN unnest(v_txids, v_seqs) u(txid, seq) ON l.txid = u.txid AND l.seq = u.seq
  LOOP
    EXECUTE format(
      'UPDATE public.%I x SET updated_at = least(x.updated_at, $1), created_at = least(x.created_at, $1) '
      'WHERE (x.updated_at > $2 OR x.created_at > $2) AND x.id IN (SELECT l.row_id FROM cv_sync.change_log l '
      '  JOIN unnest($3, $4) u(txid, seq) ON l.txid = u.txid AND l.seq = u.seq WHERE l.table_name = %L)',
      v_table, v_table) USING v_now, v_limit, v_txids, v_seqs;
  END LOOP;
  PERFORM cv_sync.end_apply();
  RETURN cardinality(v_txids);
END
$$;

CALL cv_sync.grant_rpc();

-- sql/functions/12_sign_in.sql
-- cv_auth.sign_in (0011): an offline sign-in at the clinic server. Only there: the cloud has none
-- (0011 creates it where 0003 made a clinic signing key; this file replaces it under the same test).
--
-- An e-mail with no verifier here answers exactly as an enrolled one whose password is wrong: its
-- failures are counted too, in the bucket of 0020 its keyed hash picks, so it answers 'locked',
-- with the same retry_after_s, after `lockout_attempts` of them, and cannot be told from an
-- enrolled e-mail by the answers. Before, it answered 'wrong' forever: any PC login could list who
-- has a verifier here. Both take the same steps and costs: the bucket's row lock (concurrent
-- attempts wait for each other alike), the count read and written, one bcrypt (none for 'locked',
-- alike). An enrolled person keeps their own sequence (0011): an unknown e-mail that happens to share
-- their bucket never locks them out, nor frees them.
--
-- A verifier whose sequence is missing (made in a transaction that never committed) is counted in
-- its bucket as an unknown e-mail, and its password is not checked: 0011 answered 'expired' at
-- once, which told enrolled e-mails apart, and checking the password against a count other
-- e-mails can reset would give a guesser as many tries as they like. An online sign-in
-- (cv_auth.enroll) makes the sequence again.
--
-- What remains: a bucket holds one e-mail's count, so a guesser who brings an e-mail one short of
-- the lockout, then tries a few hundred others (one of them likely in its bucket, at bcrypt's
-- pace), sees an unknown e-mail start again where an enrolled one locks. Bounded storage cannot
-- keep a count for every e-mail anyone makes up; the catalog does not grow with them.
DO $sign_in$
DECLARE
  v_crypto name := (SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
    WHERE e.extname = 'pgcrypto');
BEGIN
  IF to_regclass('cv_auth.signing_key') IS NULL THEN
    RETURN;
  END IF;

  -- {ok: true, token, expires_at, user: {id, email}} or {ok: false, reason: wrong | locked |
  -- expired | disabled, retry_after_s?}. Answers instead of raising, so a failed attempt counts.
  -- A count is the sequence's value: failures in a row or, once they reach lockout_attempts, the
  -- epoch second the lockout ends (any epoch is above 10^9, any count below); in a bucket, plus the
  -- e-mail's tag times 2^33 (a person's sequence has tag 0).
  EXECUTE format($ddl$
    CREATE OR REPLACE FUNCTION cv_auth.sign_in(p_email text, p_password text) RETURNS jsonb
      LANGUAGE plpgsql VOLATILE SECURITY DEFINER
      SET search_path = %1$I, pg_temp
    AS $fn$
    DECLARE
      v_email text := lower(btrim(p_email));
      v_settings cv_auth.settings;
      v_key cv_auth.signing_key;
      v_hash bytea;
      v_found cv_auth.verifiers;
      v_attempts regclass;
      v_tag bigint := 0;
      v_state bigint;
      v_now bigint := floor(extract(epoch FROM now()))::bigint;
      v_exp bigint;
    BEGIN
      SELECT * INTO v_settings FROM cv_auth.settings;
      SELECT * INTO v_key FROM cv_auth.signing_key;
      -- HMAC-SHA-256 under the clinic's key (as cv_auth.sign, with a prefix no token starts with).
      v_hash := sha256(v_key.outer_pad || sha256(v_key.inner_pad
        || convert_to('cv_auth.sign_in bucket ' || coalesce(v_email, ''), 'UTF8')));
      -- Orders concurrent attempts of an unknown e-mail; taken for every e-mail, so that waiting
      -- on another attempt of the same bucket does not tell an unknown e-mail either.
      PERFORM FROM cv_auth.sign_in_buckets b WHERE b.bucket = get_byte(v_hash, 0) FOR UPDATE;
      -- The row lock orders concurrent attempts of one user; their count is the sequence's.
      SELECT * INTO v_found FROM cv_auth.verifiers v WHERE v.email = v_email FOR UPDATE;
      IF FOUND THEN
        v_attempts := cv_auth.attempts_sequence(v_found.user_id, false);
      END IF;
      IF v_attempts IS NULL THEN
        v_found := NULL;
        v_attempts := to_regclass('cv_auth.sign_in_bucket_' || get_byte(v_hash, 0));
        v_tag := (get_byte(v_hash, 1) & 63) * 16777216 + get_byte(v_hash, 2) * 65536
          + get_byte(v_hash, 3) * 256 + get_byte(v_hash, 4);
      END IF;
      v_state := coalesce(pg_sequence_last_value(v_attempts), 0);
      -- Another e-mail's count (or none yet): this one starts from zero, and takes the bucket over.
      v_state := CASE WHEN v_state / 8589934592 = v_tag THEN mod(v_state, 8589934592) ELSE 0 END;
      IF v_state >= v_settings.lockout_attempts THEN
        -- A count at the limit without the lockout's end (an attempt cancelled after it was
        -- counted): the lockout starts now, so cutting attempts short never earns a fresh round.
        IF v_state < 1000000000 THEN
          v_state := v_now + v_settings.lockout_minutes * 60;
          PERFORM setval(v_attempts, v_tag * 8589934592 + v_state);
        END IF;
        IF v_state > extract(epoch FROM now()) THEN
          RETURN jsonb_build_object('ok', false, 'reason', 'locked',
            'retry_after_s', ceil(v_state - extract(epoch FROM now())));
        END IF;
        v_state := 0;
      END IF;
      -- Spent before the check, for good.
      PERFORM setval(v_attempts, v_tag * 8589934592 + v_state + 1);
      -- Without a verifier, a fresh salt: the same bcrypt, and a salt never equals its hash.
      v_found.verifier := coalesce(v_found.verifier, gen_salt('bf', 10));
      IF crypt(coalesce(p_password, ''), v_found.verifier) IS DISTINCT FROM v_found.verifier THEN
        IF v_state + 1 >= v_settings.lockout_attempts THEN
          PERFORM setval(v_attempts, v_tag * 8589934592 + v_now + v_settings.lockout_minutes * 60);
        END IF;
        RETURN jsonb_build_object('ok', false, 'reason', 'wrong');
      END IF;
      PERFORM setval(v_attempts, 0);
      IF EXISTS (SELECT FROM cv_auth.disabled_users d WHERE d.user_id = v_found.user_id) THEN
        RETURN jsonb_build_object('ok', false, 'reason', 'disabled');
      END IF;
      IF v_found.enrolled_at < now() - make_interval(days => v_settings.offline_days) THEN
        RETURN jsonb_build_object('ok', false, 'reason', 'expired');
      END IF;
      v_exp := v_now + v_settings.session_hours * 3600;
      RETURN jsonb_build_object('ok', true,
        'token', cv_auth.sign(jsonb_build_object(
          'sub', v_found.user_id, 'email', v_found.email, 'role', 'authenticated',
          'aud', 'centrovision-clinic', 'sign_in', 'clinic', 'sid', gen_random_uuid(),
          'iat', v_now, 'exp', v_exp), v_key.key_id, v_key.inner_pad, v_key.outer_pad),
        'expires_at', to_timestamp(v_exp),
        'user', jsonb_build_object('id', v_found.user_id, 'email', v_found.email));
    END
    $fn$
  $ddl$, v_crypto);

  -- As 0011 granted it (CREATE OR REPLACE keeps them; stated for a database where this file made it).
  -- No cv_sync.grant_rpc(): it sees to cv_sync and public.cv_sync_* functions only.
  REVOKE ALL ON FUNCTION cv_auth.sign_in(text, text) FROM PUBLIC;
  GRANT EXECUTE ON FUNCTION cv_auth.sign_in(text, text) TO centrovision_app, authenticated;
END
$sign_in$;

-- sql/functions/13_record_opened.sql
-- cv_audit_record_opened (first created in 0012): a signed-in person opened a patient's record. An
-- event, only for a patient they see (the same rule as the patients policy, 0004). p_opened_at:
-- when, for an opening the PC held while no server answered (NULL: now). Never later than this
-- server's clock plus the allowed skew (CV009: the PC keeps it queued until the clocks agree).
-- Never earlier than the oldest a PC can hold an opening: an outage no node outlasts (90 days, the
-- change log's purge). A time before that (a PC's clock reset to 1970, or -infinity from anyone
-- with psql) is no time the opening happened: such an opening is recorded at this server's clock
-- instead, when it arrived. Dated earlier, it would
-- drop out of every trail read by time, and the retention would let it be deleted at once.
-- Returns the event's id.
CREATE OR REPLACE FUNCTION public.cv_audit_record_opened(p_patient_id uuid, p_opened_at timestamptz DEFAULT NULL)
  RETURNS uuid
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = ''
AS $$
DECLARE
  v_event uuid;
  v_at timestamptz := clock_timestamp();
BEGIN
  IF auth.uid() IS NULL THEN
    RAISE EXCEPTION 'only a signed-in person opens a record' USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF p_patient_id IS NULL OR NOT public.cv_patient_visible(p_patient_id) THEN
    RAISE EXCEPTION 'no such patient for this person' USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF p_opened_at IS NOT NULL THEN
    PERFORM cv_sync.check_clock(p_opened_at, 'the time this PC opened the record',
      'check this PC''s date and time (NTP); the opening stays queued on the PC until this server''s clock has caught up with it');
    IF p_opened_at >= v_at - interval '90 days' THEN
      v_at := p_opened_at;
    END IF;
  END IF;
  INSERT INTO cv_audit.events (node_id, at, author, action, table_name, row_id, patient_id)
  SELECT n.node_id, v_at, cv_sync.current_author(), 'open', 'patients', p_patient_id, p_patient_id
  FROM cv_sync.node n
  RETURNING event_id INTO v_event;
  RETURN v_event;
END
$$;

CALL cv_sync.grant_rpc();

-- What `centrovision-sync cloud migrate` records: the project counts as having these files.
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
insert into cv_meta.schema_migrations (name, checksum) values ('functions/00_grant_rpc.sql', 'b1b14215f38fda11557289c9f2473c700d565083d35d2440b5f761dab6daf121') on conflict (name) do update set checksum = excluded.checksum, applied_at = now() where cv_meta.schema_migrations.checksum <> excluded.checksum;
insert into cv_meta.schema_migrations (name, checksum) values ('functions/01_row_versions.sql', 'd0daaa5c2e5c83f5150a78cd208328247c70851ea00f0342843ba422c1fd20c9') on conflict (name) do update set checksum = excluded.checksum, applied_at = now() where cv_meta.schema_migrations.checksum <> excluded.checksum;
insert into cv_meta.schema_migrations (name, checksum) values ('functions/02_update_columns.sql', '8744425105fbb3e9f0114b36cfa1bcf8b2825ba5fe14cc85acf44bddcf4d2bef') on conflict (name) do update set checksum = excluded.checksum, applied_at = now() where cv_meta.schema_migrations.checksum <> excluded.checksum;
insert into cv_meta.schema_migrations (name, checksum) values ('functions/03_sync_apply.sql', 'd84be83ae4102db6d9041bc6e38de6ce217a928722f6c829ec8030f9563740d9') on conflict (name) do update set checksum = excluded.checksum, applied_at = now() where cv_meta.schema_migrations.checksum <> excluded.checksum;
insert into cv_meta.schema_migrations (name, checksum) values ('functions/04_client_apply.sql', 'ac6738a493eaa15c810dc76b22d82442cb67cb49d77c1b02384bb88367324d26') on conflict (name) do update set checksum = excluded.checksum, applied_at = now() where cv_meta.schema_migrations.checksum <> excluded.checksum;
insert into cv_meta.schema_migrations (name, checksum) values ('functions/05_capture.sql', '849b45918a790395ce1a3207800b07cb9a21bf85a53ff55782fd33586c71138f') on conflict (name) do update set checksum = excluded.checksum, applied_at = now() where cv_meta.schema_migrations.checksum <> excluded.checksum;
insert into cv_meta.schema_migrations (name, checksum) values ('functions/06_snapshot.sql', '68a7a2bc096f37f9459b0febed6ac632fb60ea0391685490905f1e3dd4bbf526') on conflict (name) do update set checksum = excluded.checksum, applied_at = now() where cv_meta.schema_migrations.checksum <> excluded.checksum;
insert into cv_meta.schema_migrations (name, checksum) values ('functions/07_wakeups.sql', '712b12dbaaf5d88ed41699a2db50ed28f07895a84b47ea24a0581c98019f69a1') on conflict (name) do update set checksum = excluded.checksum, applied_at = now() where cv_meta.schema_migrations.checksum <> excluded.checksum;
insert into cv_meta.schema_migrations (name, checksum) values ('functions/08_positional.sql', 'e0436ad5b9300da23cf0671081a377f536561c80b34a7c426d1c8b8460ab4fa0') on conflict (name) do update set checksum = excluded.checksum, applied_at = now() where cv_meta.schema_migrations.checksum <> excluded.checksum;
insert into cv_meta.schema_migrations (name, checksum) values ('functions/09_deflated.sql', 'e3f94d0d7aa2028b834c913482743c50ab92c5c3f7dc10524741b1a55124788a') on conflict (name) do update set checksum = excluded.checksum, applied_at = now() where cv_meta.schema_migrations.checksum <> excluded.checksum;
insert into cv_meta.schema_migrations (name, checksum) values ('functions/10_pull.sql', 'c84ec8dbc3dd294beaa232fe86f8b4f740665cf7714bf77edf68759a165dcf51') on conflict (name) do update set checksum = excluded.checksum, applied_at = now() where cv_meta.schema_migrations.checksum <> excluded.checksum;
insert into cv_meta.schema_migrations (name, checksum) values ('functions/11_restamp.sql', '12bbecc394e34134c18618f4d36432b745a16a03ec5fbb8c258fb80947bc63db') on conflict (name) do update set checksum = excluded.checksum, applied_at = now() where cv_meta.schema_migrations.checksum <> excluded.checksum;
insert into cv_meta.schema_migrations (name, checksum) values ('functions/12_sign_in.sql', 'f6b0d2e6c882944303472b6e7f2006cd836c2284baf9e95e7227262ee7b60f32') on conflict (name) do update set checksum = excluded.checksum, applied_at = now() where cv_meta.schema_migrations.checksum <> excluded.checksum;
insert into cv_meta.schema_migrations (name, checksum) values ('functions/13_record_opened.sql', '14f36ef9d1b9ba8bc2cf3bdb9ba61c47ab50ecb32ec4cebc7f0cf9a470d408d4') on conflict (name) do update set checksum = excluded.checksum, applied_at = now() where cv_meta.schema_migrations.checksum <> excluded.checksum;
