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
