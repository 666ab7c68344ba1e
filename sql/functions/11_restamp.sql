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
