-- 0006 Sync machinery, part 2: the read side of the protocol (identity, pull, cursors,
-- acknowledgements, initial-sync pages, purge). PROTOCOL.md is the specification.

-- ---------------------------------------------------------------------------------------------
-- Helpers.

-- Per synced table: md5 of its columns (name, type, NOT NULL, enum labels) and its policy.
-- Columns are taken by name, in name order: rows travel as JSON keyed by column name, so only
-- what changes that mapping (or the values a column accepts) counts as drift.
CREATE FUNCTION cv_sync.fingerprint() RETURNS jsonb
  LANGUAGE sql STABLE
  SET search_path = ''
  RETURN (
    SELECT jsonb_object_agg(s.table_name, (
      SELECT md5(string_agg(
          a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
            || coalesce(' (' || (
              SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder) FROM pg_catalog.pg_enum e
              WHERE e.enumtypid = a.atttypid) || ')', ''),
          ', ' ORDER BY a.attname) || '; policy ' || s.policy)
      FROM pg_catalog.pg_attribute a
      WHERE a.attrelid = to_regclass(format('public.%I', s.table_name)) AND a.attnum > 0 AND NOT a.attisdropped))
    FROM cv_sync.synced_tables s
  );

-- A cursor {"txid": n, "seq": n} with non-negative integers, or CV005.
CREATE FUNCTION cv_sync.parse_cursor(p_cursor jsonb, p_name text, OUT txid bigint, OUT seq bigint)
  LANGUAGE plpgsql IMMUTABLE
  SET search_path = ''
AS $$
BEGIN
  IF jsonb_typeof(p_cursor) IS DISTINCT FROM 'object'
    OR jsonb_typeof(p_cursor -> 'txid') IS DISTINCT FROM 'number'
    OR jsonb_typeof(p_cursor -> 'seq') IS DISTINCT FROM 'number'
    OR (p_cursor ->> 'txid') !~ '^[0-9]{1,19}$' OR (p_cursor ->> 'seq') !~ '^[0-9]{1,19}$'
  THEN
    RAISE EXCEPTION '% must be a cursor {"txid": n, "seq": n}, got %', p_name, coalesce(p_cursor::text, 'null')
      USING ERRCODE = 'CV005';
  END IF;
  txid := (p_cursor ->> 'txid')::bigint;
  seq := (p_cursor ->> 'seq')::bigint;
END
$$;

CREATE FUNCTION cv_sync.cursor_json(p_txid bigint, p_seq bigint) RETURNS jsonb
  LANGUAGE sql IMMUTABLE
  RETURN jsonb_build_object('txid', p_txid, 'seq', p_seq);

-- The oldest transaction still running: every entry below it is final, so a reader that stops
-- there can never find a new entry behind its cursor later (a late commit is read late, not lost).
CREATE FUNCTION cv_sync.horizon() RETURNS bigint
  LANGUAGE sql STABLE
  RETURN pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot())::text::bigint;

-- A cursor beyond every transaction id this node has handed out comes from a past this node no
-- longer has: it was restored from a backup (or rebuilt) after the peer read from it.
CREATE FUNCTION cv_sync.check_not_ahead(p_txid bigint, p_name text) RETURNS void
  LANGUAGE plpgsql STABLE
  SET search_path = ''
AS $$
BEGIN
  IF p_txid > pg_snapshot_xmax(pg_current_snapshot())::text::bigint THEN
    RAISE EXCEPTION '% (txid %) is ahead of this node (next txid %): this database was restored from a backup or rebuilt after the peer last read it',
      p_name, p_txid, pg_snapshot_xmax(pg_current_snapshot())
      USING ERRCODE = 'CV006',
        HINT = 'run cv_sync_init(name, p_reinit => true) here and re-sync the peer (cv_sync_reset_peer on it)';
  END IF;
END
$$;

-- ---------------------------------------------------------------------------------------------
-- RPC: identity.

-- Names this node; p_reinit => true starts a new epoch, which makes every peer stop with CV001
-- instead of resuming a cursor into a history this node no longer has (after a restore).
CREATE FUNCTION public.cv_sync_init(p_node_name text, p_reinit boolean DEFAULT false) RETURNS jsonb
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = ''
AS $$
DECLARE
  v_node cv_sync.node;
BEGIN
  IF p_node_name IS NULL OR p_node_name !~ '\S' THEN
    RAISE EXCEPTION 'p_node_name must not be blank' USING ERRCODE = 'CV005';
  END IF;
  -- The WHERE names the one row: pg-safeupdate (hosted Supabase) refuses an UPDATE without one.
  UPDATE cv_sync.node
  SET node_name = p_node_name, epoch = CASE WHEN p_reinit THEN gen_random_uuid() ELSE epoch END
  WHERE singleton
  RETURNING * INTO v_node;
  RETURN jsonb_build_object('node_id', v_node.node_id, 'node_name', v_node.node_name, 'epoch', v_node.epoch);
END
$$;

-- max_txid: the next transaction id this node will hand out; every txid in its log and every
-- cursor a peer can legitimately hold is at most this. A peer holding a larger cursor knows this
-- node was restored (the pull refuses it too: CV006). now: for measuring clock skew.
-- open_conflicts: what waits for a reviewer here. quarantined: changes held in this node's
-- quarantine (0007; the cloud's), for a node credential those its clinic sent.
CREATE FUNCTION public.cv_sync_node() RETURNS jsonb
  LANGUAGE plpgsql STABLE SECURITY DEFINER
  SET search_path = ''
AS $$
BEGIN
  PERFORM cv_sync.require_node(NULL);
  RETURN (
    SELECT jsonb_build_object(
      'node_id', n.node_id, 'node_name', n.node_name, 'epoch', n.epoch, 'fingerprint', cv_sync.fingerprint(),
      'now', clock_timestamp(), 'max_txid', pg_snapshot_xmax(pg_current_snapshot())::text::bigint,
      'open_conflicts', (SELECT count(*) FROM cv_sync.conflicts k WHERE k.status = 'open'),
      'quarantined', (SELECT count(*) FROM cv_sync.quarantine q
        WHERE NOT cv_sync.called_by_node()
          OR q.source = (SELECT c.node_id FROM cv_sync.clinic_nodes c WHERE c.user_id = auth.uid())))
    FROM cv_sync.node n
  );
END
$$;

-- ---------------------------------------------------------------------------------------------
-- RPC: reading changes.

-- A page of the log after p_after, below the horizon, in (txid, seq) order. The page ends at a
-- transaction boundary when the last transaction finishes within another p_limit entries (so the
-- target sees a source transaction whole); a larger one is split, which is still safe: its
-- entries are in the order the source executed them, each statement foreign-key valid.
-- Entries that came from p_consumer or originated there are scanned but not returned (no echo);
-- the cursor moves past them. A clinic's node credential gets only its scope's entries, as
-- cv_sync.op_for turns them (0005, "Scope"); an evicted row travels as its id alone. When the page
-- reaches the horizon the cursor moves to it, so an idle source still advances its readers'
-- cursors.
CREATE FUNCTION public.cv_sync_pull(
  p_consumer uuid,
  p_after jsonb DEFAULT '{"txid": 0, "seq": 0}',
  p_limit integer DEFAULT 1000
) RETURNS json
  LANGUAGE plpgsql STABLE SECURITY DEFINER
  SET search_path = ''
AS $$
DECLARE
  v_after record;
  v_horizon bigint := cv_sync.horizon();
  v_end_txid xid8;
  v_end_seq bigint;
  v_has_more boolean := false;
  v_changes json;
  v_held uuid[];
BEGIN
  IF p_consumer IS NULL THEN
    RAISE EXCEPTION 'p_consumer (the pulling node id) is required' USING ERRCODE = 'CV005';
  END IF;
  PERFORM cv_sync.require_node(NULL);
  v_held := cv_sync.node_scope();
  IF p_limit IS NULL OR p_limit < 1 THEN
    RAISE EXCEPTION 'p_limit must be a positive number, got %', p_limit USING ERRCODE = 'CV005';
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
    SELECT coalesce(json_agg(json_build_object(
        'table', l.table_name, 'row_id', l.row_id, 'op', s.op,
        'row', CASE WHEN s.op = 'evict' THEN jsonb_build_object('id', l.row_id) ELSE l.row_data END, 'version', l.version,
        'base_version', CASE WHEN s.op <> 'evict' THEN l.base_version END, 'origin', l.origin, 'hlc', l.hlc,
        'changed_columns', l.changed_columns, 'resolves', l.resolves, 'author', l.author,
        'txid', l.txid::text::bigint, 'seq', l.seq)
        ORDER BY l.txid, l.seq), '[]'::json)
    INTO v_changes
    FROM cv_sync.change_log l
    CROSS JOIN LATERAL (SELECT cv_sync.op_for(l.op, l.scope, l.scope_before, v_held) AS op) s
    WHERE (l.txid, l.seq) > (v_after.txid::text::xid8, v_after.seq) AND (l.txid, l.seq) <= (v_end_txid, v_end_seq)
      AND s.op IS NOT NULL
      AND (l.op = 'rescope' OR l.origin <> p_consumer AND l.received_from IS DISTINCT FROM p_consumer);
  END IF;

  RETURN (
    SELECT json_build_object(
      'node_id', n.node_id, 'epoch', n.epoch, 'fingerprint', cv_sync.fingerprint(), 'now', clock_timestamp(),
      'changes', coalesce(v_changes, '[]'::json),
      'cursor', CASE WHEN v_has_more THEN cv_sync.cursor_json(v_end_txid::text::bigint, v_end_seq)
                     ELSE cv_sync.cursor_json(greatest(v_horizon, v_after.txid), CASE WHEN v_horizon > v_after.txid THEN 0 ELSE v_after.seq END) END,
      'has_more', v_has_more)
    FROM cv_sync.node n
  );
END
$$;

-- Where this node stands with a peer: the engine resumes from here after a crash.
CREATE FUNCTION public.cv_sync_cursor(p_peer uuid) RETURNS jsonb
  LANGUAGE plpgsql STABLE SECURITY DEFINER
  SET search_path = ''
AS $$
BEGIN
  PERFORM cv_sync.require_node(NULL);
  RETURN (
    SELECT jsonb_build_object(
      'cursor', cv_sync.cursor_json(coalesce(p.cursor_txid, 0), coalesce(p.cursor_seq, 0)),
      'epoch', p.epoch,
      'catchup_until', CASE WHEN p.catchup_txid IS NOT NULL THEN cv_sync.cursor_json(p.catchup_txid, p.catchup_seq) END,
      'snapshot_progress', p.snapshot_progress,
      'acked', CASE WHEN p.acked_txid IS NOT NULL THEN cv_sync.cursor_json(p.acked_txid, p.acked_seq) END)
    FROM (SELECT) dummy LEFT JOIN cv_sync.peers p ON p.peer_id = p_peer
  );
END
$$;

-- The consumer has applied this node's log up to p_cursor (never moves back).
CREATE FUNCTION public.cv_sync_ack(p_consumer uuid, p_cursor jsonb) RETURNS void
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = ''
AS $$
DECLARE
  v_cursor record := cv_sync.parse_cursor(p_cursor, 'p_cursor');
BEGIN
  IF p_consumer IS NULL THEN
    RAISE EXCEPTION 'p_consumer is required' USING ERRCODE = 'CV005';
  END IF;
  PERFORM cv_sync.require_node(p_consumer);
  PERFORM cv_sync.check_not_ahead(v_cursor.txid, 'p_cursor');
  INSERT INTO cv_sync.peers AS p (peer_id, acked_txid, acked_seq)
  VALUES (p_consumer, v_cursor.txid, v_cursor.seq)
  ON CONFLICT (peer_id) DO UPDATE SET
    acked_txid = excluded.acked_txid, acked_seq = excluded.acked_seq, updated_at = now()
  WHERE p.acked_txid IS NULL OR (excluded.acked_txid, excluded.acked_seq) > (p.acked_txid, p.acked_seq);
END
$$;

-- Entries the consumer has not acknowledged yet and would receive: the "pending up" count.
CREATE FUNCTION public.cv_sync_pending(p_consumer uuid) RETURNS bigint
  LANGUAGE plpgsql STABLE SECURITY DEFINER
  SET search_path = ''
AS $$
DECLARE
  v_txid bigint;
  v_seq bigint;
  v_held uuid[];
BEGIN
  PERFORM cv_sync.require_node(NULL);
  v_held := cv_sync.node_scope();
  SELECT p.acked_txid, p.acked_seq INTO v_txid, v_seq FROM cv_sync.peers p WHERE p.peer_id = p_consumer;
  RETURN (
    SELECT count(*) FROM cv_sync.change_log l
    WHERE (l.txid, l.seq) > (coalesce(v_txid, 0)::text::xid8, coalesce(v_seq, 0))
      AND l.txid < cv_sync.horizon()::text::xid8
      AND cv_sync.op_for(l.op, l.scope, l.scope_before, v_held) IS NOT NULL
      AND (l.op = 'rescope' OR l.origin <> p_consumer AND l.received_from IS DISTINCT FROM p_consumer));
END
$$;

-- A page of one table's rows in id order, with each row's HLC and origin, for an initial sync
-- (PROTOCOL.md "Initial sync"). cursor: the log position at this read's horizon; the copy
-- reflects at least everything below it. A clinic's node credential gets the rows of its scope.
CREATE FUNCTION public.cv_sync_snapshot(p_table text, p_after_id uuid DEFAULT NULL, p_limit integer DEFAULT 1000)
  RETURNS json
  LANGUAGE plpgsql STABLE SECURITY DEFINER
  SET search_path = ''
AS $$
DECLARE
  v_rows json;
  v_last uuid;
  v_has_more boolean;
  v_held uuid[];
  v_in_scope text;
BEGIN
  PERFORM cv_sync.require_node(NULL);
  v_held := cv_sync.node_scope();
  IF NOT EXISTS (SELECT FROM cv_sync.synced_tables s WHERE s.table_name = p_table) THEN
    RAISE EXCEPTION 'unknown synced table %', coalesce(p_table, 'null') USING ERRCODE = 'CV005';
  END IF;
  IF p_limit IS NULL OR p_limit < 1 THEN
    RAISE EXCEPTION 'p_limit must be a positive number, got %', p_limit USING ERRCODE = 'CV005';
  END IF;
  -- $3: the scope held; a row copied unlogged may lack a kept scope, then it is read now.
  v_in_scope := CASE WHEN v_held IS NULL THEN 'true' ELSE format(
    'coalesce((SELECT sc.scope FROM cv_sync.scopes sc WHERE sc.table_name = %1$L AND sc.row_id = t.id), '
    'cv_sync.row_scope(%1$L, to_jsonb(t))) && $3', p_table) END;
  EXECUTE format(
    'SELECT coalesce(json_agg(json_build_object(''row'', to_json(x), ''hlc'', coalesce(rs.hlc, cv_sync.synthetic_hlc(x.updated_at, n.node_id)), '
    '    ''origin'', coalesce(rs.origin, n.node_id)) ORDER BY x.id), ''[]''::json), '
    '  (array_agg(x.id ORDER BY x.id DESC))[1] '
    'FROM (SELECT * FROM public.%1$I t WHERE ($1 IS NULL OR t.id > $1) AND %2$s ORDER BY t.id LIMIT $2) x '
    'CROSS JOIN cv_sync.node n '
    'LEFT JOIN cv_sync.row_state rs ON rs.table_name = %1$L AND rs.row_id = x.id', p_table, v_in_scope)
  INTO v_rows, v_last USING p_after_id, p_limit, v_held;
  EXECUTE format('SELECT EXISTS (SELECT FROM public.%I t WHERE t.id > $1 AND %s)', p_table, v_in_scope)
    INTO v_has_more USING v_last, p_limit, v_held;
  RETURN (
    SELECT json_build_object(
      'node_id', n.node_id, 'epoch', n.epoch, 'fingerprint', cv_sync.fingerprint(), 'now', clock_timestamp(),
      'table', p_table, 'after_id', p_after_id, 'rows', v_rows, 'last_id', coalesce(v_last, p_after_id),
      'has_more', coalesce(v_has_more, false), 'cursor', cv_sync.cursor_json(cv_sync.horizon(), 0))
    FROM cv_sync.node n
  );
END
$$;

-- Drops log entries and tombstones older than p_retention that every peer has acknowledged.
-- A node without peers, or with a peer that never acknowledged anything, keeps everything: those
-- entries are what a first sync, or that peer, still needs. p_limit: at most that many of each,
-- oldest first, so a call over an API with a statement timeout fits (call again while `more`);
-- NULL purges everything due in one statement (a cron job on the node itself). Once nothing more
-- is due, `log_size` is the number of entries left (counted then; null while `more`).
-- A clinic server's daemon keeps the cloud's log bounded too, with its node credential: for it
-- the retention is at least 7 days and a call deletes at most 10,000 of each, whatever it asks,
-- so a stolen credential can neither empty the cloud's history nor hold it in one long statement.
-- What every peer acknowledged is all a purge ever drops: no sync loses a change to it.
CREATE FUNCTION public.cv_sync_purge(p_retention interval DEFAULT '90 days', p_limit integer DEFAULT NULL)
  RETURNS jsonb
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = ''
AS $$
DECLARE
  v_acked record;
  v_log bigint := 0;
  v_tombstones bigint := 0;
  v_retention interval := p_retention;
  v_limit integer := p_limit;
  v_more boolean;
BEGIN
  IF p_retention IS NULL OR p_retention < interval '0' THEN
    RAISE EXCEPTION 'p_retention must be a non-negative interval' USING ERRCODE = 'CV005';
  END IF;
  IF p_limit < 1 THEN
    RAISE EXCEPTION 'p_limit must be a positive number or null (no limit), got %', p_limit USING ERRCODE = 'CV005';
  END IF;
  PERFORM cv_sync.require_node(NULL);
  IF cv_sync.called_by_node() THEN
    v_retention := greatest(p_retention, interval '7 days');
    v_limit := least(coalesce(p_limit, 10000), 10000);
  END IF;
  -- The least acknowledged position; NULLs sort first, so a peer that never acked wins.
  SELECT p.acked_txid::text::xid8 AS txid, p.acked_seq AS seq INTO v_acked
  FROM cv_sync.peers p ORDER BY p.acked_txid NULLS FIRST, p.acked_seq LIMIT 1;
  IF v_acked.txid IS NOT NULL THEN
    DELETE FROM cv_sync.change_log l
    WHERE (l.txid, l.seq) IN (
      SELECT d.txid, d.seq FROM cv_sync.change_log d
      WHERE (d.txid, d.seq) <= (v_acked.txid, v_acked.seq) AND d.recorded_at < now() - v_retention
      ORDER BY d.txid, d.seq LIMIT v_limit);
    GET DIAGNOSTICS v_log = ROW_COUNT;
    DELETE FROM cv_sync.row_state s
    WHERE (s.table_name, s.row_id) IN (
      SELECT d.table_name, d.row_id FROM cv_sync.row_state d
      WHERE d.deleted AND d.deleted_at < now() - v_retention AND (d.txid, d.seq) <= (v_acked.txid, v_acked.seq)
      LIMIT v_limit);
    GET DIAGNOSTICS v_tombstones = ROW_COUNT;
  END IF;
  v_more := v_limit IS NOT NULL AND (v_log = v_limit OR v_tombstones = v_limit);
  RETURN jsonb_build_object('log_entries', v_log, 'tombstones', v_tombstones, 'more', v_more,
    'log_size', CASE WHEN NOT v_more THEN (SELECT count(*) FROM cv_sync.change_log) END);
END
$$;

CALL cv_sync.grant_rpc();
