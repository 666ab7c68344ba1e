-- Generated from sql/0008_sync_rpc.sql by `npm run supabase:migrations`: do not edit (edit sql/0008_sync_rpc.sql and run that again).
-- 0008 Sync machinery, part 4: settling conflicts, the apply loop and the write-side RPC
-- functions (cv_sync_apply, cv_sync_apply_snapshot, cv_sync_reset_peer, conflicts). The
-- building blocks are in 0007; PROTOCOL.md is the specification.

-- Settles one concurrent change (PROTOCOL.md "Conflicts"). Returns what won: 'remote' (the
-- incoming change was written, or for a delete must be), 'local', or 'merged'. Deterministic in
-- the two versions: the other node, settling the same pair, reaches the same row.
CREATE FUNCTION cv_sync.settle(
  p_change cv_sync.change, p_local_row jsonb, p_local_version uuid, p_local_hlc text, p_local_origin uuid,
  p_policy text, p_source uuid, OUT winner text, OUT recorded integer
)
  LANGUAGE plpgsql
  SET search_path = ''
AS $$
DECLARE
  v_table text := p_change.table_name;
  v_incoming_newer boolean := p_change.hlc > p_local_hlc;
  v_meta text[] := cv_sync.meta_columns();
  v_remote jsonb;
  v_diff text[];
  v_local_changed text[];
  v_incoming_only text[];
  v_local_only text[];
  v_both text[];
  v_merged jsonb;
BEGIN
  recorded := 0;
  -- One side deleted the row: nothing to merge, the whole row is decided.
  IF p_local_row IS NULL OR p_change.op = 'delete' THEN
    winner := CASE WHEN p_policy = 'lww' AND v_incoming_newer THEN 'remote' ELSE 'local' END;
    recorded := cv_sync.record_conflict(v_table, p_change.row_id,
      p_local_row, p_local_version, p_local_hlc, p_local_origin,
      CASE WHEN p_change.op = 'upsert' THEN p_change.row_data END, p_change.version, p_change.hlc, p_change.origin,
      winner, p_policy,
      CASE WHEN p_local_row IS NULL THEN 'edited on the other node, deleted here'
        ELSE 'deleted on the other node, edited here' END
        || CASE WHEN p_policy = 'manual' THEN '; kept for review' ELSE '; the later change won' END,
      NULL, 'open');
    IF winner = 'remote' AND p_change.op = 'upsert' THEN
      PERFORM cv_sync.write_rows(v_table, 'insert', ARRAY[p_change]);
      PERFORM cv_sync.record_applied(ARRAY[p_change], p_source, true);
    END IF;
    RETURN;
  END IF;

  -- Both rows exist. Compare typed values rendered by this session (two nodes may render a
  -- timestamp with different offsets).
  EXECUTE format('SELECT to_jsonb(jsonb_populate_record(NULL::public.%I, $1))', v_table)
    INTO v_remote USING p_change.row_data;
  v_diff := ARRAY(SELECT k FROM jsonb_object_keys(p_local_row) k
    WHERE k <> ALL (v_meta) AND p_local_row -> k IS DISTINCT FROM v_remote -> k ORDER BY k);
  IF cardinality(v_diff) = 0 THEN
    -- Same content under two versions (a write retried on both tiers): nothing to lose; both
    -- nodes keep the version with the higher HLC.
    winner := CASE WHEN v_incoming_newer THEN 'remote' ELSE 'local' END;
  ELSIF p_policy = 'manual' THEN
    winner := 'local';
    recorded := cv_sync.record_conflict(v_table, p_change.row_id,
      p_local_row, p_local_version, p_local_hlc, p_local_origin,
      CASE WHEN p_change.op = 'upsert' THEN p_change.row_data END, p_change.version, p_change.hlc, p_change.origin,
      winner, p_policy, 'edited on both nodes; kept for review', v_diff, 'open');
  ELSE
    -- A column counts as changed by one side only when both logs are known and say so; when
    -- either side is unknown every differing column is contested, so both nodes decide alike.
    v_local_changed := cv_sync.changed_since(v_table, p_change.row_id, p_change.base_version);
    v_incoming_only := ARRAY(SELECT k FROM unnest(v_diff) k
      WHERE (p_change.changed_columns IS NULL OR k = ANY (p_change.changed_columns))
        AND v_local_changed IS NOT NULL AND k <> ALL (v_local_changed));
    v_local_only := ARRAY(SELECT k FROM unnest(v_diff) k
      WHERE v_local_changed IS NOT NULL AND k = ANY (v_local_changed)
        AND p_change.changed_columns IS NOT NULL AND k <> ALL (p_change.changed_columns));
    v_both := ARRAY(SELECT k FROM unnest(v_diff) k WHERE k <> ALL (v_incoming_only || v_local_only) ORDER BY k);
    v_merged := p_local_row || coalesce((
      SELECT jsonb_object_agg(k, v_remote -> k)
      FROM unnest(v_incoming_only || CASE WHEN v_incoming_newer THEN v_both ELSE '{}' END) k), '{}');
    winner := CASE
      WHEN v_merged - v_meta = v_remote - v_meta THEN 'remote'
      WHEN v_merged - v_meta = p_local_row - v_meta THEN 'local'
      ELSE 'merged' END;
    IF cardinality(v_both) > 0 OR winner = 'merged' THEN
      recorded := cv_sync.record_conflict(v_table, p_change.row_id,
      p_local_row, p_local_version, p_local_hlc, p_local_origin,
      CASE WHEN p_change.op = 'upsert' THEN p_change.row_data END, p_change.version, p_change.hlc, p_change.origin,
        winner, p_policy,
        CASE WHEN cardinality(v_both) > 0
          THEN 'both nodes changed ' || array_to_string(v_both, ', ') || '; the later change won those columns'
            || CASE WHEN winner = 'merged' THEN ', the other columns were merged' ELSE '' END
          ELSE 'the nodes changed different columns; merged' END,
        v_both, CASE WHEN cardinality(v_both) > 0 THEN 'open' ELSE 'resolved' END);
    END IF;
  END IF;

  IF winner = 'remote' THEN
    PERFORM cv_sync.write_rows(v_table, 'update', ARRAY[p_change]);
    PERFORM cv_sync.record_applied(ARRAY[p_change], p_source, true);
  ELSIF winner = 'merged' THEN
    PERFORM cv_sync.write_local(v_table, p_change.row_id, 'upsert',
      v_merged || jsonb_build_object(
        'version', cv_sync.pair_uuid('merge', v_table, p_change.row_id, p_local_version, p_change.version),
        'base_version', CASE WHEN v_incoming_newer THEN p_change.version ELSE p_local_version END,
        'created_at', least((p_local_row ->> 'created_at')::timestamptz, (v_remote ->> 'created_at')::timestamptz),
        'updated_at', greatest((p_local_row ->> 'updated_at')::timestamptz, (v_remote ->> 'updated_at')::timestamptz),
        'created_by', (SELECT x.by FROM (VALUES (p_local_row -> 'created_at', p_local_row -> 'created_by'),
            (v_remote -> 'created_at', v_remote -> 'created_by')) x(at, by)
          ORDER BY (x.at #>> '{}')::timestamptz, x.by #>> '{}' NULLS LAST LIMIT 1),
        -- A PC's own write settled here (no source) is its person's; elsewhere the later side's,
        -- so both nodes settling the pair write the same row.
        'updated_by', CASE WHEN p_source IS NULL THEN to_jsonb(p_change.author ->> 'user')
          WHEN v_incoming_newer THEN v_remote -> 'updated_by' ELSE p_local_row -> 'updated_by' END),
      p_local_version, NULL);
  END IF;
END
$$;

-- Validates p_source ({node_id, epoch, fingerprint[, node_name]} as cv_sync_pull/cv_sync_node
-- return them), registers the peer on first contact and locks its row, so two engines applying
-- from the same peer take turns. A changed epoch is CV001: the peer was re-initialised after a
-- restore, and resuming the old cursor would skip or repeat a history that no longer exists.
CREATE FUNCTION cv_sync.lock_peer(p_source jsonb) RETURNS cv_sync.peers
  LANGUAGE plpgsql
  SET search_path = ''
AS $$
DECLARE
  v_id uuid;
  v_epoch uuid;
  v_peer cv_sync.peers;
BEGIN
  BEGIN
    v_id := (p_source ->> 'node_id')::uuid;
    v_epoch := (p_source ->> 'epoch')::uuid;
  EXCEPTION WHEN invalid_text_representation THEN
    v_id := NULL;
  END;
  IF v_id IS NULL OR v_epoch IS NULL OR jsonb_typeof(p_source -> 'fingerprint') IS DISTINCT FROM 'object' THEN
    RAISE EXCEPTION 'p_source must be {node_id, epoch, fingerprint} as cv_sync_node() returns them on the source, got %',
      left(coalesce(p_source::text, 'null'), 200) USING ERRCODE = 'CV005';
  END IF;
  IF v_id = (SELECT n.node_id FROM cv_sync.node n) THEN
    RAISE EXCEPTION 'p_source is this node itself' USING ERRCODE = 'CV005';
  END IF;
  -- A node credential applies only as the clinic server it is bound to (0005).
  PERFORM cv_sync.require_node(v_id);
  INSERT INTO cv_sync.peers (peer_id, peer_name, epoch) VALUES (v_id, p_source ->> 'node_name', v_epoch)
  ON CONFLICT (peer_id) DO NOTHING;
  SELECT * INTO v_peer FROM cv_sync.peers p WHERE p.peer_id = v_id FOR UPDATE;
  IF v_peer.epoch IS NULL THEN
    UPDATE cv_sync.peers p SET epoch = v_epoch WHERE p.peer_id = v_id RETURNING * INTO v_peer;
  ELSIF v_peer.epoch <> v_epoch THEN
    RAISE EXCEPTION 'peer % (%) was re-initialised or restored from a backup (epoch % became %); nothing was applied',
      coalesce(p_source ->> 'node_name', v_peer.peer_name, '?'), v_id, v_peer.epoch, v_epoch
      USING ERRCODE = 'CV001',
        HINT = 'run a re-sync: cv_sync_reset_peer(peer) on this node, then an initial sync from that peer';
  END IF;
  RETURN v_peer;
END
$$;

-- CV002 when a table in p_tables has another shape (or policy) on the source than here: its rows
-- would be read with the wrong columns. Names the tables; nothing is applied.
CREATE FUNCTION cv_sync.check_fingerprint(p_source jsonb, p_tables text[]) RETURNS void
  LANGUAGE plpgsql STABLE
  SET search_path = ''
AS $$
DECLARE
  v_local jsonb := cv_sync.fingerprint();
  v_drifted text;
BEGIN
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

-- Applies collapsed changes: upserts in foreign-key order, then deletes and evictions in reverse
-- order. An eviction (a row that left this clinic's scope on the cloud) removes the row and what
-- this node knows of it, unlogged: it was deleted nowhere. A row something here still references
-- stays. From a clinic's node credential (on the cloud), a change outside its scope, or not its
-- author's to make, is held in the quarantine instead (cv_sync.hold_refused, 0007).
-- p_catchup: replaying the log over an initial copy, where a change older than the row is stale,
-- not concurrent. p_log: false only for initial-sync pages (rows, not changes; logging a million
-- copied rows would only send them back).
CREATE FUNCTION cv_sync.apply_changes(p_source uuid, p_changes cv_sync.change[], p_catchup boolean, p_log boolean)
  RETURNS jsonb
  LANGUAGE plpgsql
  SET search_path = ''
AS $$
DECLARE
  v_table record;
  v_batch cv_sync.change[];
  v_class record;
  v_item jsonb;
  v_settled record;
  v_applied bigint := 0;
  v_skipped bigint := 0;
  v_conflicts bigint := 0;
  v_deletes cv_sync.change[];
  v_blocked record;
  v_floor bigint;
  v_held uuid[] := cv_sync.node_scope();
  v_from_node boolean := cv_sync.called_by_node();
  v_hold record;
  v_quarantined bigint := 0;
  v_evicted bigint := 0;
BEGIN
  FOR v_table IN
    SELECT s.table_name, s.policy, s.position FROM cv_sync.synced_tables s
    WHERE EXISTS (SELECT FROM unnest(p_changes) c WHERE c.table_name = s.table_name)
    ORDER BY s.position
  LOOP
    v_batch := ARRAY(SELECT c FROM unnest(p_changes) c WHERE c.table_name = v_table.table_name AND c.op = 'upsert');
    IF v_from_node AND cardinality(v_batch) > 0 THEN
      v_hold := cv_sync.hold_refused(v_table.table_name, v_batch, p_source, v_held);
      v_batch := v_hold.allowed;
      v_quarantined := v_quarantined + v_hold.held;
    END IF;
    CONTINUE WHEN cardinality(v_batch) = 0;
    v_class := cv_sync.classify(v_table.table_name, v_batch, p_catchup);
    v_skipped := v_skipped + v_class.skipped;
    PERFORM cv_sync.write_rows(v_table.table_name, 'insert', v_class.inserts);
    PERFORM cv_sync.write_rows(v_table.table_name, 'update', v_class.updates);
    PERFORM cv_sync.record_applied(v_class.inserts || v_class.updates, p_source, p_log);
    v_applied := v_applied + cardinality(v_class.inserts) + cardinality(v_class.updates);
    FOR v_item IN SELECT jsonb_array_elements(v_class.conflicts) LOOP
      v_settled := cv_sync.settle(jsonb_populate_record(NULL::cv_sync.change, v_item -> 'change'),
        nullif(v_item -> 'local_row', 'null'),
        (v_item ->> 'local_version')::uuid, v_item ->> 'local_hlc', (v_item ->> 'local_origin')::uuid,
        v_table.policy, p_source);
      v_conflicts := v_conflicts + v_settled.recorded;
      IF v_settled.winner = 'local' THEN v_skipped := v_skipped + 1; ELSE v_applied := v_applied + 1; END IF;
    END LOOP;
  END LOOP;

  FOR v_table IN
    SELECT s.table_name, s.policy FROM cv_sync.synced_tables s
    WHERE EXISTS (SELECT FROM unnest(p_changes) c WHERE c.table_name = s.table_name AND c.op = 'delete')
    ORDER BY s.position DESC
  LOOP
    v_batch := ARRAY(SELECT c FROM unnest(p_changes) c WHERE c.table_name = v_table.table_name AND c.op = 'delete');
    IF v_from_node THEN
      v_hold := cv_sync.hold_refused(v_table.table_name, v_batch, p_source, v_held);
      v_batch := v_hold.allowed;
      v_quarantined := v_quarantined + v_hold.held;
    END IF;
    v_class := cv_sync.classify(v_table.table_name, v_batch, p_catchup);
    v_skipped := v_skipped + v_class.skipped;
    v_deletes := v_class.inserts || v_class.updates;
    FOR v_item IN SELECT jsonb_array_elements(v_class.conflicts) LOOP
      v_settled := cv_sync.settle(jsonb_populate_record(NULL::cv_sync.change, v_item -> 'change'),
        nullif(v_item -> 'local_row', 'null'),
        (v_item ->> 'local_version')::uuid, v_item ->> 'local_hlc', (v_item ->> 'local_origin')::uuid,
        v_table.policy, p_source);
      v_conflicts := v_conflicts + v_settled.recorded;
      IF v_settled.winner = 'remote' THEN
        v_deletes := v_deletes || jsonb_populate_record(NULL::cv_sync.change, v_item -> 'change');
      ELSE
        v_skipped := v_skipped + 1;
      END IF;
    END LOOP;
    -- A row still referenced here (a child written here concurrently) is not deleted: the
    -- delete loses, the row is re-issued as a local version based on the deletion, which the
    -- deleting node fast-forwards to. Also keeps a cascade or SET NULL from silently changing
    -- rows here that the source never changed.
    FOR v_blocked IN
      SELECT DISTINCT ON ((r.change).row_id) r.* FROM cv_sync.referenced(v_table.table_name, v_deletes) r
      ORDER BY (r.change).row_id, r.referenced_by
    LOOP
      v_conflicts := v_conflicts + cv_sync.record_conflict(v_table.table_name, (v_blocked.change).row_id,
        v_blocked.local_row, (v_blocked.local_row ->> 'version')::uuid, v_blocked.local_hlc, v_blocked.local_origin,
        NULL, (v_blocked.change).version, (v_blocked.change).hlc, (v_blocked.change).origin,
        'local', 'restrict',
        format('deleted on node %s while %s here still references it; the row was kept',
          (v_blocked.change).origin, v_blocked.referenced_by),
        NULL, 'open');
      PERFORM cv_sync.write_local(v_table.table_name, (v_blocked.change).row_id, 'upsert',
        v_blocked.local_row || jsonb_build_object('version', gen_random_uuid(),
          'base_version', (v_blocked.change).version, 'updated_at', now()),
        (v_blocked.change).version, NULL);
      v_deletes := ARRAY(SELECT d FROM unnest(v_deletes) d WHERE d.row_id <> (v_blocked.change).row_id);
      v_skipped := v_skipped + 1;
    END LOOP;
    EXECUTE format('DELETE FROM public.%I x WHERE x.id = ANY ($1)', v_table.table_name)
      USING ARRAY(SELECT d.row_id FROM unnest(v_deletes) d);
    PERFORM cv_sync.record_applied(v_deletes, p_source, p_log);
    v_applied := v_applied + cardinality(v_deletes);
  END LOOP;

  FOR v_table IN
    SELECT s.table_name FROM cv_sync.synced_tables s
    WHERE EXISTS (SELECT FROM unnest(p_changes) c WHERE c.table_name = s.table_name AND c.op = 'evict')
    ORDER BY s.position DESC
  LOOP
    v_batch := ARRAY(SELECT c FROM unnest(p_changes) c WHERE c.table_name = v_table.table_name AND c.op = 'evict');
    v_batch := ARRAY(SELECT c FROM unnest(v_batch) c WHERE c.row_id <> ALL (
      ARRAY(SELECT (r.change).row_id FROM cv_sync.referenced(v_table.table_name, v_batch) r)));
    EXECUTE format('DELETE FROM public.%I x WHERE x.id = ANY ($1)', v_table.table_name)
      USING ARRAY(SELECT c.row_id FROM unnest(v_batch) c);
    DELETE FROM cv_sync.row_state s
    WHERE s.table_name = v_table.table_name AND s.row_id IN (SELECT c.row_id FROM unnest(v_batch) c);
    v_evicted := v_evicted + cardinality(v_batch);
  END LOOP;

  -- Raise the HLC floor past everything received (see 0005, cv_sync.node), never past this
  -- node's clock plus the allowed skew: the callers refuse later stamps (CV009), and a floor in
  -- the future would put every later local stamp there too.
  -- (least() ignores a NULL: an empty batch must leave the floor alone.)
  SELECT least(m.physical, pg_catalog.floor(EXTRACT(EPOCH FROM cv_sync.clock_limit()) * 1000)::bigint) INTO v_floor
  FROM (SELECT max(cv_sync.hlc_physical(c.hlc)) AS physical FROM unnest(p_changes) c) m
  WHERE m.physical IS NOT NULL;
  UPDATE cv_sync.node SET hlc_floor = v_floor WHERE hlc_floor < v_floor;
  RETURN jsonb_build_object('applied', v_applied, 'skipped', v_skipped, 'conflicts', v_conflicts,
    'quarantined', v_quarantined, 'evicted', v_evicted);
END
$$;

-- ---------------------------------------------------------------------------------------------
-- RPC: applying.

-- One batch from a peer, in one transaction (PROTOCOL.md "Apply"). The cursor is saved in the
-- same transaction as the rows, so a crash can neither lose a batch nor count it twice.
-- The rows are written as a sync apply (cv_sync.begin_apply, 0005) for this call only: writes
-- the caller makes afterwards in the same transaction are local again. A change stamped ahead of
-- this node's clock by more than the allowed skew refuses the whole batch (CV009, 0007).
CREATE FUNCTION public.cv_sync_apply(
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
  v_result jsonb;
BEGIN
  IF (v_cursor.txid, v_cursor.seq) < (v_expected.txid, v_expected.seq) THEN
    RAISE EXCEPTION 'p_cursor % is behind p_expected %', p_cursor, p_expected USING ERRCODE = 'CV005';
  END IF;
  v_peer := cv_sync.lock_peer(p_source);
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
  v_changes := cv_sync.collapse(p_changes);
  IF cv_sync.called_by_node()
    AND EXISTS (SELECT FROM unnest(v_changes) c WHERE c.op = 'evict') THEN
    RAISE EXCEPTION 'p_changes holds an eviction: only the cloud evicts rows, and only from a clinic server'
      USING ERRCODE = 'CV005';
  END IF;
  PERFORM cv_sync.check_fingerprint(p_source, ARRAY(SELECT DISTINCT c.table_name FROM unnest(v_changes) c));
  PERFORM cv_sync.check_changes_clock(v_changes);
  PERFORM cv_sync.begin_apply(v_peer.peer_id);
  v_result := cv_sync.apply_changes(v_peer.peer_id, v_changes,
    p_catchup OR (v_peer.catchup_txid IS NOT NULL
      AND (v_peer.cursor_txid, v_peer.cursor_seq) < (v_peer.catchup_txid, v_peer.catchup_seq)),
    true);
  PERFORM cv_sync.end_apply();
  UPDATE cv_sync.peers p
  SET cursor_txid = v_cursor.txid, cursor_seq = v_cursor.seq, peer_name = coalesce(p_source ->> 'node_name', p.peer_name),
    fingerprint = p_source -> 'fingerprint', updated_at = now()
  WHERE p.peer_id = v_peer.peer_id;
  RETURN v_result || jsonb_build_object('status', 'applied', 'cursor', cv_sync.cursor_json(v_cursor.txid, v_cursor.seq));
END
$$;

-- One cv_sync_snapshot page from a peer (PROTOCOL.md "Initial sync"). Pages come table by table
-- in foreign-key order, each table in id order; progress is saved with the rows, so a crash
-- resumes at the next page. The first page's cursor is where the log replay (catch-up) starts;
-- every page raises catchup_until to its own cursor.
-- Pages are read at different moments, so a child copied late can reference a parent created
-- after its table was copied. Such a row is left out of the copy (cv_sync.orphans): its parent
-- was written after the first page's horizon, and so was the child's reference to it, so the
-- catch-up replays both, parent first; the copy is complete once the catch-up passes
-- catchup_until. Foreign keys stay checked throughout (no session_replication_role, which needs
-- a superuser): the copy never holds a dangling reference, even for a moment.
CREATE FUNCTION public.cv_sync_apply_snapshot(p_source jsonb, p_page jsonb) RETURNS jsonb
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = ''
AS $$
DECLARE
  v_table text := p_page ->> 'table';
  v_position smallint;
  v_after uuid;
  v_last uuid;
  v_cursor record;
  v_peer cv_sync.peers;
  v_at jsonb;
  v_progress jsonb;
  v_changes cv_sync.change[];
  v_orphans uuid[];
  v_result jsonb;
BEGIN
  SELECT s.position INTO v_position FROM cv_sync.synced_tables s WHERE s.table_name = v_table;
  IF v_position IS NULL OR jsonb_typeof(p_page -> 'rows') IS DISTINCT FROM 'array'
    OR jsonb_typeof(p_page -> 'has_more') IS DISTINCT FROM 'boolean'
    OR p_page ->> 'node_id' IS DISTINCT FROM p_source ->> 'node_id'
  THEN
    RAISE EXCEPTION 'p_page must be a cv_sync_snapshot page of the source node, got %', left(coalesce(p_page::text, 'null'), 200)
      USING ERRCODE = 'CV005';
  END IF;
  v_after := (p_page ->> 'after_id')::uuid;
  v_last := (p_page ->> 'last_id')::uuid;
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

  v_changes := ARRAY(
    SELECT ROW(v_table, (r.item -> 'row' ->> 'id')::uuid, 'upsert', r.item -> 'row', (r.item -> 'row' ->> 'version')::uuid,
      NULL, (r.item ->> 'origin')::uuid, r.item ->> 'hlc', NULL, NULL, NULL)::cv_sync.change
    FROM jsonb_array_elements(p_page -> 'rows') r(item));
  IF EXISTS (SELECT FROM unnest(v_changes) c WHERE c.row_id IS NULL OR c.version IS NULL OR c.origin IS NULL
      OR length(c.hlc) IS DISTINCT FROM 63 OR right(c.hlc, 36) <> c.origin::text) THEN
    RAISE EXCEPTION 'p_page.rows holds an item without row.id, row.version, origin or a valid hlc' USING ERRCODE = 'CV005';
  END IF;
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

-- Forgets a peer (cursor, epoch, acknowledgements, initial-sync progress): the way out of CV001
-- and CV006. The next contact starts over, by an initial sync or a full log replay.
CREATE FUNCTION public.cv_sync_reset_peer(p_peer uuid) RETURNS jsonb
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = ''
AS $$
DECLARE
  v_reset boolean;
BEGIN
  PERFORM cv_sync.require_node(p_peer);
  WITH gone AS (DELETE FROM cv_sync.peers p WHERE p.peer_id = p_peer RETURNING p.peer_id)
  SELECT EXISTS (SELECT FROM gone) INTO v_reset;
  RETURN jsonb_build_object('peer_id', p_peer, 'reset', v_reset);
END
$$;

-- ---------------------------------------------------------------------------------------------
-- RPC: conflicts.

CREATE FUNCTION public.cv_sync_conflicts_list(p_status text DEFAULT 'open', p_limit integer DEFAULT 100) RETURNS jsonb
  LANGUAGE plpgsql STABLE SECURITY DEFINER
  SET search_path = ''
AS $$
BEGIN
  IF p_status IS NOT NULL AND p_status NOT IN ('open', 'resolved') THEN
    RAISE EXCEPTION 'p_status must be open, resolved or null (all), got %', p_status USING ERRCODE = 'CV005';
  END IF;
  IF p_limit IS NULL OR p_limit < 1 THEN
    RAISE EXCEPTION 'p_limit must be a positive number, got %', p_limit USING ERRCODE = 'CV005';
  END IF;
  RETURN (
    SELECT coalesce(jsonb_agg(to_jsonb(k) ORDER BY k.created_at, k.id), '[]')
    FROM (
      SELECT * FROM cv_sync.conflicts c WHERE p_status IS NULL OR c.status = p_status
      ORDER BY c.created_at, c.id LIMIT p_limit
    ) k
  );
END
$$;

-- A reviewer's decision: keep_local, keep_remote (a NULL row = the delete) or merged (p_row's
-- columns over the current row). Written as a new local version based on the current one and
-- logged like any edit, marked as resolving this conflict: the peer, which recorded the same
-- conflict under the same id, fast-forwards to it even from the other version and closes it too.
-- resolved_by keeps the name the reviewer gave (p_resolved_by, as they wrote it) apart from what
-- this server verified: the database login that called, and the signed-in person if there is one.
CREATE FUNCTION public.cv_sync_conflict_resolve(
  p_id uuid, p_choice text, p_row jsonb DEFAULT NULL, p_resolved_by text DEFAULT NULL
) RETURNS jsonb
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = ''
AS $$
DECLARE
  v_conflict cv_sync.conflicts;
  v_current jsonb;
  v_chosen jsonb;
  v_base uuid;
  v_version uuid;
BEGIN
  SELECT * INTO v_conflict FROM cv_sync.conflicts k WHERE k.id = p_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no conflict %', p_id USING ERRCODE = 'CV005';
  END IF;
  IF length(p_resolved_by) > 200 OR p_resolved_by ~ '[[:cntrl:]]' THEN
    RAISE EXCEPTION 'p_resolved_by must be a name of at most 200 characters on one line' USING ERRCODE = 'CV005';
  END IF;
  IF p_choice IS NULL OR p_choice NOT IN ('keep_local', 'keep_remote', 'merged') THEN
    RAISE EXCEPTION 'p_choice must be keep_local, keep_remote or merged, got %', p_choice USING ERRCODE = 'CV005';
  END IF;
  IF p_choice = 'merged' AND (jsonb_typeof(p_row) IS DISTINCT FROM 'object'
      OR p_row ->> 'id' IS NOT NULL AND p_row ->> 'id' <> v_conflict.row_id::text) THEN
    RAISE EXCEPTION 'p_row must be an object with the columns to keep (and, if any, the id %)', v_conflict.row_id
      USING ERRCODE = 'CV005';
  END IF;
  EXECUTE format('SELECT to_jsonb(x) FROM public.%I x WHERE x.id = $1 FOR UPDATE', v_conflict.table_name)
    INTO v_current USING v_conflict.row_id;
  SELECT coalesce((v_current ->> 'version')::uuid, s.version) INTO v_base
  FROM cv_sync.row_state s WHERE s.table_name = v_conflict.table_name AND s.row_id = v_conflict.row_id;
  v_chosen := CASE p_choice
    WHEN 'keep_local' THEN v_conflict.local_row
    WHEN 'keep_remote' THEN v_conflict.remote_row
    ELSE coalesce(v_current, v_conflict.local_row, v_conflict.remote_row) || p_row END;

  PERFORM cv_sync.begin_apply((SELECT n.node_id FROM cv_sync.node n));
  IF v_chosen IS NULL THEN
    v_version := cv_sync.write_local(v_conflict.table_name, v_conflict.row_id, 'delete',
      coalesce(v_current, v_conflict.local_row, v_conflict.remote_row), v_base, p_id);
  ELSE
    v_version := gen_random_uuid();
    PERFORM cv_sync.write_local(v_conflict.table_name, v_conflict.row_id, 'upsert',
      v_chosen || jsonb_build_object('id', v_conflict.row_id, 'version', v_version, 'base_version', v_base,
        'created_at', coalesce(v_current -> 'created_at', v_chosen -> 'created_at'), 'updated_at', now(),
        'created_by', CASE WHEN v_current IS NULL THEN v_chosen -> 'created_by' ELSE v_current -> 'created_by' END,
        'updated_by', to_jsonb(auth.uid())),
      v_base, p_id);
  END IF;
  PERFORM cv_sync.end_apply();
  UPDATE cv_sync.conflicts k
  SET status = 'resolved', resolved_at = now(),
    resolved_by = coalesce(nullif(btrim(p_resolved_by), '') || ' ', '')
      || format('(verified: login %s%s)', session_user, coalesce(', user ' || auth.uid(), '')),
    resolution = jsonb_build_object('choice', p_choice, 'version', v_version)
  WHERE k.id = p_id;
  RETURN jsonb_build_object('id', p_id, 'status', 'resolved', 'choice', p_choice, 'version', v_version);
END
$$;

CALL cv_sync.grant_rpc();

-- What `centrovision-sync cloud migrate` records: the project counts as having sql/0008_sync_rpc.sql.
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
insert into cv_meta.schema_migrations (name, checksum) values ('0008_sync_rpc.sql', 'ca2e4f0a5c8be6c181fa7423a874009f4f015377ef1aa2c46bd43e3b60886a27') on conflict (name) do nothing;
