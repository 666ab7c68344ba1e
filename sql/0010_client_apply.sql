-- 0010 A PC's own writes onto the clinic server or the cloud, version-checked, with the PC's rights.
-- packages/sync-engine/PROTOCOL.md "Client apply" is the specification.
--
-- Two callers: the failover router carries a PC's last cloud writes onto the clinic server at
-- failover (read-your-writes), and the PC's offline outbox drains onto whichever tier answers. A
-- PC holds a verified person's session on both (0003, 0004: the same policies), never the
-- sync role, so cv_sync_apply is out of reach. cv_client_apply gives it the same semantics:
--   write      the target lacks the row, or holds exactly the row's base version (fast-forward);
--   skip       the target holds, or has held, this very version (idempotent: sending twice is a no-op);
--   settle     anything else: the existing conflict machinery (cv_sync.settle) decides, the
--              losing version is kept in cv_sync.conflicts; never a blind overwrite.
-- Every row write is captured like any edit, so the sync engine carries it to the other node.
--
-- Rights. cv_client_apply is SECURITY INVOKER: every row is read (FOR UPDATE) and written by the
-- caller itself, so its grants and the cloud's RLS policies (auth.uid()) apply unchanged. Only the
-- bookkeeping runs as the owner, in two SECURITY DEFINER helpers that reveal no row data:
--   cv_client_seen    has this node seen this version of this row (or deleted a row the caller
--                     proves it held, by a version of it this node has seen)?
--   cv_client_settle  settles a row the caller has just written. It proves that from the change
--                     log: the row's last entry must be this very transaction's own capture of a
--                     caller's write, which only exists if that write passed the caller's grants
--                     and policies. It then puts the row back as it was (from the log) and hands
--                     both versions to cv_sync.settle, exactly as cv_sync_apply would. The PC's
--                     written-at orders its edit there (its HLC), so one later than this
--                     server's clock plus the allowed skew is refused (CV009): the whole
--                     cv_client_apply call fails and nothing of it is applied.
-- Elsewhere a PC's timestamps are not used: the server stamps created_at/updated_at itself (0002).
-- A delete whose base version is stale is not applied and is reported per row (code conflict):
-- the row changed after the PC last saw it, and only a person can tell whether it should go.

-- Has this node seen this version of this row: logged, current, or kept by a conflict (a version
-- that lost a conflict here is no longer in the log, but it was seen).
CREATE FUNCTION cv_sync.client_saw(p_table text, p_row_id uuid, p_version uuid) RETURNS boolean
  LANGUAGE sql STABLE
  SET search_path = ''
  RETURN EXISTS (SELECT FROM cv_sync.change_log l WHERE l.row_id = p_row_id AND l.table_name = p_table
      AND l.version = p_version)
    OR EXISTS (SELECT FROM cv_sync.row_state s WHERE s.table_name = p_table AND s.row_id = p_row_id
      AND s.version = p_version)
    OR EXISTS (SELECT FROM cv_sync.conflicts k WHERE k.row_id = p_row_id AND k.table_name = p_table
      AND p_version IN (k.local_version, k.remote_version));
REVOKE ALL ON FUNCTION cv_sync.client_saw(text, uuid, uuid) FROM PUBLIC;

-- Answers only what the caller already knows of: a version is random, so "known" tells nothing to
-- anyone who did not hold the row at that version; "deleted" likewise needs p_base, a version of
-- the row this node has seen (the one the caller's edit or delete was based on). Without it, a row
-- id alone would tell whether another branch's row ever existed here.
CREATE FUNCTION public.cv_client_seen(p_table text, p_row_id uuid, p_version uuid, p_base uuid) RETURNS text
  LANGUAGE plpgsql STABLE SECURITY DEFINER
  SET search_path = ''
AS $$
BEGIN
  IF NOT EXISTS (SELECT FROM cv_sync.synced_tables s WHERE s.table_name = p_table) THEN
    RAISE EXCEPTION '% is not a synced table', p_table USING ERRCODE = 'CV005';
  END IF;
  IF cv_sync.client_saw(p_table, p_row_id, p_version) THEN
    RETURN 'known';
  END IF;
  IF p_base IS NOT NULL AND cv_sync.client_saw(p_table, p_row_id, p_base)
    AND EXISTS (SELECT FROM cv_sync.row_state s WHERE s.table_name = p_table AND s.row_id = p_row_id AND s.deleted)
  THEN
    RETURN 'deleted';
  END IF;
  RETURN 'unseen';
END
$$;

CREATE FUNCTION public.cv_client_settle(p_table text, p_row_id uuid, p_base uuid, p_written_at timestamptz)
  RETURNS jsonb
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = ''
AS $$
DECLARE
  v_node cv_sync.node;
  v_policy text;
  v_mine cv_sync.change_log;
  v_prev cv_sync.change_log;
  v_local jsonb;
  v_base_row jsonb;
  v_mine_row jsonb;
  v_changed text[];
  v_change cv_sync.change;
  v_settled record;
BEGIN
  SELECT * INTO v_node FROM cv_sync.node;
  SELECT s.policy INTO v_policy FROM cv_sync.synced_tables s WHERE s.table_name = p_table;
  IF v_policy IS NULL THEN
    RAISE EXCEPTION '% is not a synced table', p_table USING ERRCODE = 'CV005';
  END IF;
  PERFORM cv_sync.check_clock(p_written_at, format('the time this PC saved a %s row (its updated_at)', p_table),
    'check this PC''s date and time (NTP); its writes stay queued and go through once this server''s clock has caught up with them');
  SELECT * INTO v_mine FROM cv_sync.change_log l
  WHERE l.row_id = p_row_id AND l.table_name = p_table ORDER BY l.seq DESC LIMIT 1;
  IF NOT FOUND OR v_mine.txid <> pg_current_xact_id() OR v_mine.received_from IS NOT NULL
    OR v_mine.origin <> v_node.node_id OR v_mine.op <> 'upsert'
  THEN
    RAISE EXCEPTION 'cv_client_settle settles only a row this transaction has just written (use cv_client_apply)'
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  SELECT * INTO v_prev FROM cv_sync.change_log l
  WHERE l.row_id = p_row_id AND l.table_name = p_table AND l.seq < v_mine.seq ORDER BY l.seq DESC LIMIT 1;
  -- The row's state before the caller's write must be in the log (not so for a row copied by an
  -- initial sync and never edited since): without it there is nothing to settle against.
  IF NOT FOUND OR (v_prev.op = 'upsert' AND v_prev.version IS DISTINCT FROM v_mine.base_version) THEN
    RAISE EXCEPTION 'the history of this % row on this node is incomplete; it cannot be settled here', p_table
      USING ERRCODE = 'CV008', HINT = 'review the row by hand and write it again';
  END IF;

  -- Put the row back as it was, unlogged (as a sync apply), then settle as cv_sync_apply would.
  PERFORM cv_sync.begin_apply(v_node.node_id);
  DELETE FROM cv_sync.change_log l WHERE l.txid = v_mine.txid AND l.seq = v_mine.seq;
  UPDATE cv_sync.row_state s
  SET version = v_prev.version, hlc = v_prev.hlc, origin = v_prev.origin, deleted = v_prev.op = 'delete',
    deleted_at = CASE WHEN v_prev.op = 'delete' THEN v_prev.recorded_at END, txid = v_prev.txid, seq = v_prev.seq
  WHERE s.table_name = p_table AND s.row_id = p_row_id;
  IF v_prev.op = 'delete' THEN
    EXECUTE format('DELETE FROM public.%I x WHERE x.id = $1', p_table) USING p_row_id;
  ELSE
    v_local := v_prev.row_data;
    PERFORM cv_sync.write_rows(p_table, 'update', ARRAY[ROW(p_table, p_row_id, 'upsert', v_local, v_prev.version,
      v_prev.base_version, v_prev.origin, v_prev.hlc, NULL, NULL, v_prev.author)::cv_sync.change]);
  END IF;

  -- The columns the PC changed: against its base version's content, when this node has it, so
  -- edits of different columns merge; unknown (NULL) makes every differing column contested.
  -- Both sides are rendered by this session (a row received from a peer may render differently).
  SELECT l.row_data INTO v_base_row FROM cv_sync.change_log l
  WHERE l.row_id = p_row_id AND l.table_name = p_table AND l.version = p_base AND l.op = 'upsert'
  ORDER BY l.seq DESC LIMIT 1;
  IF v_base_row IS NOT NULL THEN
    EXECUTE format('SELECT to_jsonb(jsonb_populate_record(NULL::public.%1$I, $1)), '
      'to_jsonb(jsonb_populate_record(NULL::public.%1$I, $2))', p_table)
      INTO v_base_row, v_mine_row USING v_base_row, v_mine.row_data;
    v_changed := ARRAY(SELECT k FROM jsonb_object_keys(v_mine_row) k
      WHERE k <> ALL (cv_sync.meta_columns()) AND v_mine_row -> k IS DISTINCT FROM v_base_row -> k ORDER BY k);
  END IF;

  -- The PC is not a node: its write is this node's change, ordered by when the PC made it.
  v_change := ROW(p_table, p_row_id, 'upsert',
    v_mine.row_data || jsonb_build_object('updated_at', p_written_at, 'base_version', p_base),
    v_mine.version, p_base, v_node.node_id, cv_sync.synthetic_hlc(p_written_at, v_node.node_id),
    v_changed, NULL, cv_sync.current_author())::cv_sync.change;
  v_settled := cv_sync.settle(v_change, v_local, v_prev.version, v_prev.hlc, v_prev.origin, v_policy, NULL);
  PERFORM cv_sync.end_apply();
  RETURN jsonb_build_object('winner', v_settled.winner, 'recorded', v_settled.recorded);
END
$$;

-- A booking drained from a PC's outbox is checked again here for double booking: the PC checked
-- it against its own copy, which may have missed an appointment made elsewhere meanwhile. A clash
-- (the same patient, doctor or room, both holding their slot, the times overlapping) keeps both
-- appointments, as the person who booked offline meant it, and is answered to the PC, which
-- shows it to that person to keep both or cancel one (an ordinary edit, with their rights).
-- Carried writes (p_mode 'carry') were checked by the tier that acknowledged them: not rechecked.
-- SECURITY INVOKER: the search finds only appointments the caller's person may see. It runs only
-- when the write moved the booking's slot (new, other time, patient, doctor or room, or taken up
-- again after a cancellation): a status change such as a check-in raises nothing.
-- Appointments last at most 8 hours (the booking command's limit), so one starting more than a
-- day before cannot be running: that bound keeps the search on the (…_id, starts_at) indexes
-- instead of a doctor's whole history, as the booking check does (apps/desktop booking.ts).
-- Returns [{id, with, columns}]: the booking, the other appointment, what they share.
CREATE FUNCTION public.cv_client_overlaps(p_table text, p_id uuid, p_before jsonb, p_mode text) RETURNS jsonb
  LANGUAGE sql STABLE
  SET search_path = ''
  RETURN (
    SELECT coalesce(jsonb_agg(jsonb_build_object('id', b.id, 'with', a.id, 'columns', array_remove(ARRAY[
        CASE WHEN a.patient_id = b.patient_id THEN 'patient_id' END,
        CASE WHEN a.doctor_id = b.doctor_id THEN 'doctor_id' END,
        CASE WHEN a.room_id = b.room_id THEN 'room_id' END], NULL)) ORDER BY a.starts_at, a.id), '[]')
    FROM public.appointments b JOIN public.appointments a
      ON a.id <> b.id AND a.starts_at < b.ends_at AND a.ends_at > b.starts_at
        AND a.starts_at > b.starts_at - interval '1 day'
        AND (a.patient_id = b.patient_id OR a.doctor_id = b.doctor_id OR a.room_id = b.room_id)
    WHERE p_table = 'appointments' AND p_mode = 'settle' AND b.id = p_id
      AND b.status NOT IN ('cancelled', 'no_show') AND a.status NOT IN ('cancelled', 'no_show')
      AND (p_before IS NULL
        OR (p_before ->> 'status') IN ('cancelled', 'no_show')
        OR (b.starts_at, b.ends_at, b.patient_id, b.doctor_id, b.room_id) IS DISTINCT FROM (
          (p_before ->> 'starts_at')::timestamptz, (p_before ->> 'ends_at')::timestamptz,
          (p_before ->> 'patient_id')::uuid, (p_before ->> 'doctor_id')::uuid, (p_before ->> 'room_id')::uuid))
  );

CREATE FUNCTION public.cv_client_apply(p_changes jsonb, p_mode text DEFAULT 'settle') RETURNS jsonb
  LANGUAGE plpgsql
  SET search_path = ''
AS $$
DECLARE
  v_item jsonb;
  v_table text;
  v_id uuid;
  v_op text;
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
  FOR v_item IN SELECT e FROM jsonb_array_elements(p_changes) e LOOP
    v_table := v_item ->> 'table';
    v_op := v_item ->> 'op';
    v_row := v_item -> 'row';
    BEGIN
      v_id := (v_item ->> 'id')::uuid;
      v_base := (v_item ->> 'base_version')::uuid;
      v_version := (v_row ->> 'version')::uuid;
    EXCEPTION WHEN invalid_text_representation THEN
      RAISE EXCEPTION 'p_changes holds a change with a malformed id or version' USING ERRCODE = 'CV005';
    END;
    IF v_id IS NULL OR v_op IS NULL OR v_op NOT IN ('upsert', 'delete')
      OR (v_op = 'upsert' AND (jsonb_typeof(v_row) IS DISTINCT FROM 'object' OR v_version IS NULL
        OR (v_row ->> 'id') IS DISTINCT FROM v_id::text))
      OR (v_op = 'delete' AND v_base IS NULL)
    THEN
      RAISE EXCEPTION 'p_changes holds a malformed change of %', coalesce(v_table, 'no table') USING ERRCODE = 'CV005';
    END IF;
    -- Validates the table name too (CV005 for anything but a synced table).
    v_seen := public.cv_client_seen(v_table, v_id, coalesce(v_version, v_base), v_base);

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
        SELECT string_agg(format('%I', a.attname), ', ' ORDER BY a.attnum) INTO v_columns
        FROM pg_catalog.pg_attribute a
        WHERE a.attrelid = format('public.%I', v_table)::regclass AND a.attnum > 0 AND NOT a.attisdropped
          AND a.attname <> 'id';
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
      WHEN SQLSTATE 'CV008' THEN
        GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT;
        v_rejected := v_rejected || jsonb_build_object('table', v_table, 'id', v_id, 'code', 'conflict',
          'message', v_message || '; review the row by hand and save it again');
    END;
  END LOOP;
  RETURN jsonb_build_object('applied', v_applied, 'skipped', v_skipped, 'conflicts', v_conflicts,
    'rejected', v_rejected, 'overlaps', v_overlaps);
END
$$;

-- Changes made on this node that a peer (the cloud, for the clinic server) has not acknowledged
-- yet: the failover router keeps the PCs on the clinic server until this is 0, so nothing written
-- during the outage seems to vanish when they return to the cloud. The largest backlog of any
-- peer; with no peer at all, every change made here (nothing has left this node).
-- p_upto: count only log entries up to this position (cv_client_position() when the cloud came
-- back): writes that keep arriving while the PCs wait cannot hold them here forever. An entry
-- whose transaction was still open at that moment has a lower position and is counted.
CREATE FUNCTION public.cv_client_pending(p_upto bigint DEFAULT NULL) RETURNS bigint
  LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = ''
  RETURN coalesce(
    (SELECT max(n.pending) FROM cv_sync.peers p CROSS JOIN LATERAL (
      SELECT count(*) AS pending FROM cv_sync.change_log l
      WHERE (l.txid, l.seq) > (coalesce(p.acked_txid, 0)::text::xid8, coalesce(p.acked_seq, 0))
        AND l.origin <> p.peer_id AND l.received_from IS DISTINCT FROM p.peer_id AND l.op <> 'rescope'
        AND (p_upto IS NULL OR l.seq <= p_upto)) n),
    (SELECT count(*) FROM cv_sync.change_log l
      WHERE l.received_from IS NULL AND l.op <> 'rescope' AND (p_upto IS NULL OR l.seq <= p_upto)));

-- The position of the last change logged here, for cv_client_pending(p_upto), and what a PC on
-- the clinic server watches to refresh its offline copy when it moves: the log's sequence, read
-- in constant time (max(seq) would scan the whole log, which no index orders by seq alone). It
-- may be ahead of the last committed entry (a transaction still open, or rolled back): an entry
-- still open is counted by p_upto either way, one rolled back was never logged.
CREATE FUNCTION public.cv_client_position() RETURNS bigint
  LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = ''
  RETURN coalesce(pg_catalog.pg_sequence_last_value(
    pg_catalog.pg_get_serial_sequence('cv_sync.change_log', 'seq')::regclass), 0);

REVOKE ALL ON FUNCTION public.cv_client_seen(text, uuid, uuid, uuid), public.cv_client_settle(text, uuid, uuid, timestamptz),
  public.cv_client_overlaps(text, uuid, jsonb, text), public.cv_client_apply(jsonb, text),
  public.cv_client_pending(bigint), public.cv_client_position() FROM PUBLIC;

-- Written for a PC and nobody else. A PC applies as its signed-in person, whose grants and
-- policies (0004) decide each row: never the sync role nor the service key, which are past
-- row-level security (the sync has cv_sync_apply). The clinic's backlog and log position are the
-- PC router's questions to the clinic server, asked as its login or as its verified person; the
-- cloud answers them to no one.
DO $client$
DECLARE
  v_role text;
BEGIN
  FOR v_role IN SELECT r.rolname FROM pg_roles r WHERE r.rolname IN ('anon', 'service_role') LOOP
    EXECUTE format('REVOKE ALL ON FUNCTION public.cv_client_seen(text, uuid, uuid, uuid), '
      'public.cv_client_settle(text, uuid, uuid, timestamptz), public.cv_client_overlaps(text, uuid, jsonb, text), '
      'public.cv_client_apply(jsonb, text), '
      'public.cv_client_pending(bigint), public.cv_client_position() FROM %I', v_role);
  END LOOP;
  GRANT EXECUTE ON FUNCTION public.cv_client_seen(text, uuid, uuid, uuid), public.cv_client_settle(text, uuid, uuid, timestamptz),
    public.cv_client_overlaps(text, uuid, jsonb, text), public.cv_client_apply(jsonb, text) TO authenticated;
  IF to_regclass('cv_auth.signing_key') IS NOT NULL THEN
    GRANT EXECUTE ON FUNCTION public.cv_client_pending(bigint), public.cv_client_position()
      TO centrovision_app, authenticated;
  ELSE
    REVOKE ALL ON FUNCTION public.cv_client_pending(bigint), public.cv_client_position() FROM authenticated;
  END IF;
END
$client$;
