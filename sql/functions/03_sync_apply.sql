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
