-- public.cv_client_apply(changes, mode): a PC's own writes onto the clinic server or the cloud,
-- version-checked, with the PC's rights (0010 says how; packages/sync-engine/PROTOCOL.md "Client
-- apply" is the specification). SECURITY INVOKER: every row is read and written by the caller, so
-- its grants and row-level security apply; the bookkeeping runs as the owner in cv_client_seen and
-- cv_client_settle (0010).
CREATE OR REPLACE FUNCTION public.cv_client_apply(p_changes jsonb, p_mode text DEFAULT 'settle') RETURNS jsonb
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

-- Written for a PC's signed-in person and nobody else: never the sync role nor the service key,
-- which are past row-level security (the sync has cv_sync_apply). Named roles too: Supabase's
-- default privileges hand every new function in public to its API roles.
REVOKE ALL ON FUNCTION public.cv_client_apply(jsonb, text) FROM PUBLIC;
DO $grants$
DECLARE
  v_role text;
BEGIN
  FOR v_role IN SELECT r.rolname FROM pg_roles r WHERE r.rolname IN ('anon', 'service_role') LOOP
    EXECUTE format('REVOKE ALL ON FUNCTION public.cv_client_apply(jsonb, text) FROM %I', v_role);
  END LOOP;
END
$grants$;
GRANT EXECUTE ON FUNCTION public.cv_client_apply(jsonb, text) TO authenticated;
