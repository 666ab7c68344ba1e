-- 0007 Sync machinery, part 3: how a peer's changes are applied (the building blocks).
-- PROTOCOL.md "Apply" and "Conflicts" describe the rules; the comments here say which failure
-- each rule prevents.
--
-- Shape of an apply, one transaction per batch:
--   collapse   one change per row (the last state, the base of the first change), so a row
--              created and deleted within the batch never touches the table;
--   upserts    table by table in foreign-key order (parents first), set-based: classify every
--              change against the target row and row_state in one query, write the fast-forwards
--              in one statement, settle the concurrent ones row by row;
--   deletes    the same in reverse order (children first);
--   record     append what was applied to this node's log with its original origin, HLC and
--              versions (a third node downstream sees it), and update row_state.

-- One change as apply handles it.
CREATE TYPE cv_sync.change AS (
  table_name text,
  row_id uuid,
  op text,
  row_data jsonb,
  version uuid,
  base_version uuid,
  origin uuid,
  hlc text,
  changed_columns text[],
  resolves uuid,
  author jsonb
);

-- Scope on the cloud for what an apply writes (0005, "Scope").

-- A clinic may write only rows in its scope, before and after the change (a branch: only its
-- own), and only what the change's author could have written under the cloud's own policies
-- (public.cv_row_writable, the rules row-level security checks, 0004), judged on the cloud's
-- current rows. What a clinic's node credential sends otherwise is not applied: it is held in
-- cv_sync.quarantine with the cloud's current row and the reason, for an administrator.
CREATE FUNCTION cv_sync.write_scope(p_table text, p_row jsonb) RETURNS uuid[]
  LANGUAGE sql STABLE
  SET search_path = ''
  RETURN CASE WHEN p_table = 'branches' THEN ARRAY[(p_row ->> 'id')::uuid] ELSE cv_sync.row_scope(p_table, p_row) END;

CREATE TABLE cv_sync.quarantine (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  source uuid NOT NULL,
  table_name text NOT NULL,
  row_id uuid NOT NULL,
  change jsonb NOT NULL,
  current_row jsonb,
  reason text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX quarantine_created_at_idx ON cv_sync.quarantine (created_at);

-- Why a clinic's node credential (holding p_held, NULL: every branch) may not apply change p_change
-- over the cloud's row p_current, or NULL when it may; p_mine: the author's branches. A change
-- without an author (one the clinic server's own machinery or owner made: a merge, a restored
-- parent, a reviewed resolution) is judged by the scope alone, its created_by/updated_by included.
CREATE FUNCTION cv_sync.refusal(p_change cv_sync.change, p_current jsonb, p_held uuid[], p_mine uuid[]) RETURNS text
  LANGUAGE plpgsql STABLE
  SET search_path = ''
AS $$
DECLARE
  v_user uuid;
  v_table text := p_change.table_name;
  v_allowed boolean;
BEGIN
  IF p_held IS NOT NULL AND NOT (
    (p_change.op <> 'upsert' OR coalesce(cv_sync.write_scope(v_table, p_change.row_data) && p_held, false))
    AND (p_current IS NULL OR coalesce(cv_sync.write_scope(v_table, p_current) && p_held, false)))
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

-- Of one table's changes from p_source, those its node credential (holding p_held) may apply;
-- the others go to the quarantine (cv_sync.refusal says why), and the clinic is brought back to
-- the cloud's row: where the cloud has no such row in the clinic's scope (a row planted there, or
-- one that left the scope while the clinic edited it), an eviction entry for its branches (a
-- 'rescope' entry whose scope_before is given: nothing to keep in cv_sync.scopes) makes it drop
-- its copy; where the row is the clinic's to hold, the cloud's row is written again as a new
-- version based on the refused one, which the clinic fast-forwards to. An administrator decides
-- from the quarantine whether the refused version should stand after all.
CREATE FUNCTION cv_sync.hold_refused(p_table text, p_changes cv_sync.change[], p_source uuid, p_held uuid[],
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
      SELECT c, to_jsonb(x) AS current, cv_sync.refusal(c, to_jsonb(x), $2, a.mine) AS reason
      FROM unnest($1) c
      LEFT JOIN public.%1$I x ON x.id = (c).row_id
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

-- A uuid both nodes derive alike from a pair of versions, whichever side they stand on: the
-- id of the conflict between them, and the version of their merge. So two nodes settling the
-- same pair independently produce the same row and the same conflict record.
CREATE FUNCTION cv_sync.pair_uuid(p_kind text, p_table text, p_row_id uuid, p_a uuid, p_b uuid) RETURNS uuid
  LANGUAGE sql IMMUTABLE
  RETURN pg_catalog.md5(p_kind || ' ' || p_table || ' ' || p_row_id::text || ' '
    || least(p_a::text, p_b::text) || ' ' || greatest(p_a::text, p_b::text))::uuid;

CREATE FUNCTION cv_sync.meta_columns() RETURNS text[]
  LANGUAGE sql IMMUTABLE
  RETURN ARRAY['id', 'created_at', 'updated_at', 'version', 'base_version', 'created_by', 'updated_by'];

-- Parses and validates a batch, then collapses it to one change per row. Per row the source's
-- seq orders the entries: it is the order in which the source wrote the row, which (txid, seq)
-- page order is not when transactions commit out of id order. A malformed change is CV005,
-- never a half-applied batch. Typed in one pass (jsonb_to_recordset); only the narrow columns
-- are grouped, so the rows' JSON is not sorted or copied around.
CREATE FUNCTION cv_sync.collapse(p_changes jsonb) RETURNS cv_sync.change[]
  LANGUAGE plpgsql STABLE
  SET search_path = ''
AS $$
DECLARE
  v_result cv_sync.change[];
  v_bad bigint;
BEGIN
  IF jsonb_typeof(p_changes) IS DISTINCT FROM 'array' THEN
    RAISE EXCEPTION 'p_changes must be a JSON array of changes' USING ERRCODE = 'CV005';
  END IF;
  BEGIN
    WITH n AS (
      SELECT * FROM ROWS FROM (jsonb_to_recordset(p_changes)
          AS ("table" text, row_id uuid, seq bigint, base_version uuid, changed_columns text[], resolves uuid))
        WITH ORDINALITY AS n(table_name, row_id, seq, base_version, changed_columns, resolves, ord)
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
    SELECT
      array_agg(ROW(w.table_name, w.row_id, w.op, w.row_data, w.version, r.base_version, w.origin, w.hlc,
        CASE WHEN r.all_columns THEN NULL WHEN r.entries = 1 THEN w.changed_columns ELSE coalesce(c.names, '{}') END,
        r.resolves, w.author)::cv_sync.change),
      min(w.ord) FILTER (WHERE s.table_name IS NULL OR w.row_id IS NULL OR w.version IS NULL OR w.origin IS NULL
        OR w.op IS NULL OR w.op NOT IN ('upsert', 'delete', 'evict')
        OR length(w.hlc) IS DISTINCT FROM 63 OR right(w.hlc, 36) <> w.origin::text
        OR jsonb_typeof(w.row_data) IS DISTINCT FROM 'object' OR (w.row_data ->> 'id')::uuid IS DISTINCT FROM w.row_id)
    INTO v_result, v_bad
    FROM ROWS FROM (jsonb_to_recordset(p_changes)
        AS ("table" text, row_id uuid, op text, "row" jsonb, version uuid, origin uuid, hlc text, changed_columns text[],
          author jsonb))
      WITH ORDINALITY AS w(table_name, row_id, op, row_data, version, origin, hlc, changed_columns, author, ord)
    JOIN per_row r ON r.last_ord = w.ord
    LEFT JOIN cv_sync.synced_tables s ON s.table_name = w.table_name
    LEFT JOIN columns_changed c ON c.table_name = w.table_name AND c.row_id = w.row_id;
  EXCEPTION WHEN invalid_text_representation OR invalid_parameter_value OR datatype_mismatch THEN
    RAISE EXCEPTION 'p_changes holds a malformed change: %', SQLERRM USING ERRCODE = 'CV005';
  END;
  IF v_bad IS NOT NULL THEN
    RAISE EXCEPTION 'change #% is not a valid change of a synced table: %', v_bad, left((p_changes -> (v_bad::integer - 1))::text, 300)
      USING ERRCODE = 'CV005';
  END IF;
  RETURN coalesce(v_result, '{}');
END
$$;

-- CV009 (cv_sync.check_clock) when a change is stamped later than this node's clock plus the
-- allowed skew: its HLC, or its row's created_at/updated_at. Applied, it would win every later
-- last-write-wins decision here, and raise hlc_floor, and with it every later stamp of this node,
-- into the future (then on to every node downstream). The latest is checked and named; the caller
-- raises before writing anything, so the batch is refused whole and the cursor stays.
CREATE FUNCTION cv_sync.check_changes_clock(p_changes cv_sync.change[]) RETURNS void
  LANGUAGE plpgsql
  SET search_path = ''
AS $$
DECLARE
  v_latest record;
BEGIN
  SELECT c.table_name, t.what, t.at INTO v_latest
  FROM unnest(p_changes) c
  CROSS JOIN LATERAL (VALUES
    ('HLC', pg_catalog.to_timestamp(cv_sync.hlc_physical(c.hlc) / 1000.0)),
    ('updated_at', (c.row_data ->> 'updated_at')::timestamptz),
    ('created_at', (c.row_data ->> 'created_at')::timestamptz)) t(what, at)
  ORDER BY t.at DESC NULLS LAST
  LIMIT 1;
  IF FOUND THEN
    PERFORM cv_sync.check_clock(v_latest.at,
      format('the %s of a change of %s from the other node', v_latest.what, v_latest.table_name),
      'check the clocks of that node and of this server (NTP); sync resumes by itself once the change is no longer ahead');
  END IF;
END
$$;

-- Appends applied changes to this log (p_log) and updates row_state; closes the conflicts a
-- resolution settles. p_source NULL = the change was made here.
-- On the cloud it also keeps their scopes (0005, "Scope"), set-based: each entry is logged with
-- its scope and scope_before (so cv_sync.track_scope, for captures, is not needed), then the rows
-- they link to are re-read. Rows copied by an initial sync (not logged) get their scopes alike.
CREATE FUNCTION cv_sync.record_applied(p_changes cv_sync.change[], p_source uuid, p_log boolean) RETURNS void
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
        CASE WHEN v_tracks THEN CASE WHEN c.op = 'delete' THEN coalesce(s.scope, cv_sync.row_scope(c.table_name, c.row_data))
          ELSE cv_sync.row_scope(c.table_name, c.row_data) END END AS scope
      FROM unnest(p_changes) c
      LEFT JOIN cv_sync.scopes s ON v_tracks AND s.table_name = c.table_name AND s.row_id = c.row_id
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
      SELECT c.table_name, c.row_id, cv_sync.row_scope(c.table_name, c.row_data),
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

-- Records a conflict; returns 1 when it is new. Its id is derived from the two versions, so the
-- other node records the same pair under the same id. Recorded again while open, the later
-- decision replaces the earlier: a delete that LWW awarded to the peer but that a referencing
-- row then kept is recorded as kept. A NULL row is a deletion.
CREATE FUNCTION cv_sync.record_conflict(
  p_table text, p_row_id uuid,
  p_local_row jsonb, p_local_version uuid, p_local_hlc text, p_local_origin uuid,
  p_remote_row jsonb, p_remote_version uuid, p_remote_hlc text, p_remote_origin uuid,
  p_winner text, p_policy text, p_reason text, p_columns text[], p_status text
) RETURNS integer
  LANGUAGE plpgsql
  SET search_path = ''
AS $$
DECLARE
  v_new boolean;
BEGIN
  INSERT INTO cv_sync.conflicts AS k (id, table_name, row_id, local_row, remote_row, local_version, remote_version,
    local_hlc, remote_hlc, local_origin, remote_origin, winner, policy, reason, columns, status,
    resolved_at, resolved_by)
  VALUES (
    cv_sync.pair_uuid('conflict', p_table, p_row_id, p_local_version, p_remote_version), p_table, p_row_id,
    p_local_row, p_remote_row, p_local_version, p_remote_version, p_local_hlc, p_remote_hlc, p_local_origin,
    p_remote_origin, p_winner, p_policy, p_reason, p_columns, p_status,
    CASE WHEN p_status = 'resolved' THEN now() END, CASE WHEN p_status = 'resolved' THEN 'sync' END)
  ON CONFLICT (id) DO UPDATE SET
    winner = excluded.winner, policy = excluded.policy, reason = excluded.reason, columns = excluded.columns,
    status = excluded.status, resolved_at = excluded.resolved_at, resolved_by = excluded.resolved_by
  WHERE k.status = 'open'
  RETURNING k.xmax = 0 INTO v_new;
  RETURN CASE WHEN v_new THEN 1 ELSE 0 END;
END
$$;

-- Writes rows verbatim ('insert' or 'update'; their ids locked or absent). A missing parent that
-- this node deleted is restored (the delete loses to a row that still needs it); a parent never
-- seen is SQLSTATE 23503: it is in the source's log beyond this page (a child written by a
-- transaction with a lower id than its parent's), so the engine retries with a larger page.
-- A unique violation other than the id (the same patient registered on both sides) is CV004:
-- a person must decide which record stays, the machine cannot.
CREATE FUNCTION cv_sync.write_rows(p_table text, p_kind text, p_changes cv_sync.change[]) RETURNS void
  LANGUAGE plpgsql
  SET search_path = ''
AS $$
DECLARE
  v_columns text;
  v_count bigint;
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
          'INSERT INTO public.%1$I SELECT r.* FROM unnest($1) c, jsonb_populate_record(NULL::public.%1$I, c.row_data) r '
          'ON CONFLICT (id) DO NOTHING', p_table) USING p_changes;
        GET DIAGNOSTICS v_count = ROW_COUNT;
        IF v_count < cardinality(p_changes) THEN
          -- Absent when classified, present now: written concurrently; classify again.
          RAISE EXCEPTION '% row(s) of % were written concurrently with this apply', cardinality(p_changes) - v_count, p_table
            USING ERRCODE = 'serialization_failure', HINT = 'retry the batch';
        END IF;
      ELSE
        SELECT string_agg(format('%I', a.attname), ', ' ORDER BY a.attnum) INTO v_columns
        FROM pg_attribute a
        WHERE a.attrelid = format('public.%I', p_table)::regclass AND a.attnum > 0 AND NOT a.attisdropped
          AND a.attname <> 'id';
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
        RAISE EXCEPTION 'cannot apply % rows: % (%); the same record exists twice under different ids', p_table, v_detail, v_constraint
          USING ERRCODE = 'CV004', HINT = 'merge or correct one of the two records on either side, then sync again';
    END;
  END LOOP;
END
$$;

-- The single-column foreign keys of public.p_table: the parent table and the two columns.
CREATE FUNCTION cv_sync.parent_keys(p_table text)
  RETURNS TABLE (parent regclass, parent_table text, child_column text, parent_column text)
  LANGUAGE sql STABLE
  SET search_path = ''
BEGIN ATOMIC
  SELECT con.confrelid::regclass, p.relname::text, ca.attname::text, pa.attname::text
  FROM pg_catalog.pg_constraint con
  JOIN pg_catalog.pg_class p ON p.oid = con.confrelid
  JOIN pg_catalog.pg_attribute ca ON ca.attrelid = con.conrelid AND ca.attnum = con.conkey[1]
  JOIN pg_catalog.pg_attribute pa ON pa.attrelid = con.confrelid AND pa.attnum = con.confkey[1]
  WHERE con.contype = 'f' AND con.conrelid = pg_catalog.format('public.%I', p_table)::regclass
    AND pg_catalog.cardinality(con.conkey) = 1;
END;

-- For the rows about to be written in p_table, restores every missing parent that this node
-- deleted (from the delete's last image, as a new local version based on the tombstone, so the
-- deleting peer fast-forwards to it) and records the lost delete as an open conflict. Raises
-- 23503 when a missing parent was never seen here, so the retry loop above always progresses.
CREATE FUNCTION cv_sync.restore_parents(p_table text, p_changes cv_sync.change[]) RETURNS void
  LANGUAGE plpgsql
  SET search_path = ''
AS $$
DECLARE
  v_fk record;
  v_missing record;
  v_restored integer := 0;
  v_tombstone record;
  v_restored_row jsonb;
BEGIN
  FOR v_fk IN
    SELECT * FROM cv_sync.parent_keys(p_table)
  LOOP
    FOR v_missing IN EXECUTE format(
      'SELECT DISTINCT (c.row_data ->> %1$L)::uuid AS parent_id, c.row_id AS child_id, c.origin '
      'FROM unnest($1) c WHERE c.row_data ->> %1$L IS NOT NULL '
      'AND NOT EXISTS (SELECT FROM %2$s p WHERE p.%3$I = (c.row_data ->> %1$L)::uuid)',
      v_fk.child_column, v_fk.parent, v_fk.parent_column) USING p_changes
    LOOP
      SELECT l.row_data, s.version, s.hlc, s.origin INTO v_tombstone
      FROM cv_sync.row_state s
      JOIN LATERAL (
        SELECT l.row_data FROM cv_sync.change_log l
        WHERE l.row_id = s.row_id AND l.table_name = s.table_name ORDER BY l.seq DESC LIMIT 1
      ) l ON true
      WHERE s.table_name = v_fk.parent_table AND s.row_id = v_missing.parent_id AND s.deleted;
      IF v_tombstone.row_data IS NULL THEN
        RAISE EXCEPTION '% % references % %, which has not arrived here yet', p_table, v_missing.child_id,
          v_fk.parent_table, v_missing.parent_id
          USING ERRCODE = 'foreign_key_violation',
            HINT = 'the parent is further on in the source''s log: pull a larger page and apply again';
      END IF;
      v_restored_row := v_tombstone.row_data || jsonb_build_object(
        'version', gen_random_uuid(), 'base_version', v_tombstone.version, 'updated_at', now());
      PERFORM cv_sync.write_local(v_fk.parent_table, v_missing.parent_id, 'upsert', v_restored_row,
        v_tombstone.version, NULL);
      PERFORM cv_sync.record_conflict(v_fk.parent_table, v_missing.parent_id,
        NULL, v_tombstone.version, v_tombstone.hlc, v_tombstone.origin,
        v_restored_row, (v_restored_row ->> 'version')::uuid, NULL, v_missing.origin,
        'remote', 'restrict',
        format('deleted here while %s %s, which references it, was written on node %s; the row was restored',
          p_table, v_missing.child_id, v_missing.origin),
        NULL, 'open');
      v_restored := v_restored + 1;
    END LOOP;
  END LOOP;
  IF v_restored = 0 THEN
    RAISE EXCEPTION 'cannot write % rows: a foreign key outside the synced tables is not satisfied', p_table
      USING ERRCODE = 'foreign_key_violation';
  END IF;
END
$$;

-- Of the rows about to be copied into p_table by an initial sync, those that reference a parent
-- this node has neither as a row nor as a tombstone: the parent was created at the source after
-- its own table was copied (see cv_sync_apply_snapshot). A tombstoned parent is left to
-- write_rows, which restores it and records the lost delete.
CREATE FUNCTION cv_sync.orphans(p_table text, p_changes cv_sync.change[]) RETURNS uuid[]
  LANGUAGE plpgsql STABLE
  SET search_path = ''
AS $$
DECLARE
  v_fk record;
  v_orphans uuid[] := '{}';
BEGIN
  FOR v_fk IN
    SELECT * FROM cv_sync.parent_keys(p_table)
  LOOP
    EXECUTE format(
      'SELECT $2 || coalesce(array_agg(c.row_id), ''{}'') FROM unnest($1) c '
      'WHERE c.row_data ->> %1$L IS NOT NULL '
      'AND NOT EXISTS (SELECT FROM %2$s p WHERE p.%3$I = (c.row_data ->> %1$L)::uuid) '
      'AND NOT EXISTS (SELECT FROM cv_sync.row_state s WHERE s.table_name = %4$L '
      'AND s.row_id = (c.row_data ->> %1$L)::uuid AND s.deleted)',
      v_fk.child_column, v_fk.parent, v_fk.parent_column, v_fk.parent_table)
      INTO v_orphans USING p_changes, v_orphans;
  END LOOP;
  RETURN v_orphans;
END
$$;

-- A write decided here (a merge, a restored row, a reviewed resolution): written verbatim and
-- logged as a change of this node with a fresh HLC, so it flows to peers like any local edit.
-- p_base goes into the log entry: the version the peer must hold to fast-forward. Returns the
-- new version (for a delete, the deletion's).
CREATE FUNCTION cv_sync.write_local(
  p_table text, p_row_id uuid, p_op text, p_row jsonb, p_base uuid, p_resolves uuid
) RETURNS uuid
  LANGUAGE plpgsql
  SET search_path = ''
AS $$
DECLARE
  v_node cv_sync.node;
  v_previous jsonb;
  v_change cv_sync.change;
BEGIN
  SELECT * INTO v_node FROM cv_sync.node;
  EXECUTE format('SELECT to_jsonb(x) FROM public.%I x WHERE x.id = $1', p_table) INTO v_previous USING p_row_id;
  v_change := ROW(p_table, p_row_id, p_op, p_row,
    CASE WHEN p_op = 'upsert' THEN (p_row ->> 'version')::uuid ELSE gen_random_uuid() END,
    p_base, v_node.node_id, cv_sync.hlc(v_node.hlc_floor, v_node.node_id),
    CASE WHEN p_op = 'upsert' AND v_previous IS NOT NULL THEN ARRAY(
      SELECT k FROM jsonb_object_keys(p_row) k
      WHERE k <> ALL (cv_sync.meta_columns()) AND p_row -> k IS DISTINCT FROM v_previous -> k ORDER BY k) END,
    p_resolves, cv_sync.current_author())::cv_sync.change;
  IF p_op = 'delete' THEN
    EXECUTE format('DELETE FROM public.%I x WHERE x.id = $1', p_table) USING p_row_id;
  ELSE
    PERFORM cv_sync.write_rows(p_table, CASE WHEN v_previous IS NULL THEN 'insert' ELSE 'update' END, ARRAY[v_change]);
  END IF;
  PERFORM cv_sync.record_applied(ARRAY[v_change], NULL, true);
  RETURN v_change.version;
END
$$;

-- The columns this node changed in a row since version p_base: from its own log. NULL when that
-- is unknown (no base, or the base's entry purged or never logged here): every column counts.
CREATE FUNCTION cv_sync.changed_since(p_table text, p_row_id uuid, p_base uuid) RETURNS text[]
  LANGUAGE sql STABLE
  SET search_path = ''
  RETURN (
    SELECT CASE WHEN b.seq IS NULL OR bool_or(l.seq IS NOT NULL AND l.changed_columns IS NULL) THEN NULL
      ELSE coalesce(array_agg(DISTINCT c.name ORDER BY c.name) FILTER (WHERE c.name IS NOT NULL), '{}') END
    FROM (
      SELECT max(l.seq) AS seq FROM cv_sync.change_log l
      WHERE l.row_id = p_row_id AND l.table_name = p_table AND l.version = p_base
    ) b
    LEFT JOIN cv_sync.change_log l ON l.row_id = p_row_id AND l.table_name = p_table AND l.seq > b.seq
    LEFT JOIN LATERAL unnest(l.changed_columns) AS c(name) ON true
    GROUP BY b.seq
  );

-- Sorts one table's changes of one op against this node's state. Rows are locked first, in id
-- order: a concurrent local edit then waits for this apply instead of being overwritten on the
-- strength of a version it had already replaced (and appliers take locks in one order).
--   write     new here; or a fast-forward (this node holds the change's base, which for a
--             tombstone means the change was based on our delete); or a reviewed resolution of a
--             conflict whose versions this node holds; or a newer change of the node that made
--             our current version (one node serialises its own edits: no conflict);
--   skip      already here; an older change of the node that made our version; a delete of a
--             row deleted here; during catch-up, a change older than our copy;
--   conflict  anything else: both nodes changed the row since the change's base.
-- inserts/updates: the writes whose row is absent/present here (for deletes: tombstone only /
-- a row to delete).
CREATE FUNCTION cv_sync.classify(
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
      LEFT JOIN public.%1$I x ON x.id = c.row_id
      LEFT JOIN cv_sync.row_state s ON s.table_name = %1$L AND s.row_id = c.row_id
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

-- Of the rows about to be deleted from p_table, those a row of another table still references
-- (one referencing table named), with this node's row and its HLC.
CREATE FUNCTION cv_sync.referenced(p_table text, p_deletes cv_sync.change[])
  RETURNS TABLE (change cv_sync.change, local_row jsonb, local_hlc text, local_origin uuid, referenced_by text)
  LANGUAGE plpgsql
  SET search_path = ''
AS $$
DECLARE
  v_fk record;
BEGIN
  FOR v_fk IN
    SELECT con.conrelid::regclass AS child, ca.attname::text AS child_column, pa.attname::text AS parent_column
    FROM pg_constraint con
    JOIN pg_attribute ca ON ca.attrelid = con.conrelid AND ca.attnum = con.conkey[1]
    JOIN pg_attribute pa ON pa.attrelid = con.confrelid AND pa.attnum = con.confkey[1]
    WHERE con.contype = 'f' AND con.confrelid = format('public.%I', p_table)::regclass AND cardinality(con.conkey) = 1
    ORDER BY con.conrelid::regclass::text
  LOOP
    RETURN QUERY EXECUTE format(
      'SELECT d, to_jsonb(x), s.hlc, s.origin, %1$L FROM unnest($1) d '
      'JOIN public.%2$I x ON x.id = d.row_id '
      'LEFT JOIN cv_sync.row_state s ON s.table_name = %2$L AND s.row_id = d.row_id '
      'WHERE EXISTS (SELECT FROM %3$s r WHERE r.%4$I = x.%5$I)',
      v_fk.child::text, p_table, v_fk.child, v_fk.child_column, v_fk.parent_column) USING p_deletes;
  END LOOP;
END
$$;
