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
