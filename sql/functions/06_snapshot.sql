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
