-- The sync's apply (0007, 0008, 0013; packages/sync-engine/PROTOCOL.md is the specification).

-- Writes rows verbatim ('insert' or 'update'; their ids locked or absent). A missing parent that
-- this node deleted is restored (the delete loses to a row that still needs it); a parent never
-- seen is SQLSTATE 23503: it is in the source's log beyond this page (a child written by a
-- transaction with a lower id than its parent's), so the engine retries with a larger page.
-- A unique violation other than the id (the same patient registered on both sides) is CV004:
-- a person must decide which record stays, the machine cannot.
CREATE OR REPLACE FUNCTION cv_sync.write_rows(p_table text, p_kind text, p_changes cv_sync.change[]) RETURNS void
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
        RAISE EXCEPTION 'cannot apply % rows: % (%); the same record exists twice under different ids', p_table, v_detail, v_constraint
          USING ERRCODE = 'CV004', HINT = 'merge or correct one of the two records on either side, then sync again';
    END;
  END LOOP;
END
$$;

-- After an apply of p_changes (0013: why an eviction waits): lists its evictions the apply kept (the row is still here), drops
-- from the list the rows it upserted, and evicts every listed row nothing references any more,
-- children before parents. Returns how many rows it evicted.
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

-- Applies collapsed changes (cv_sync.apply_received: 0008's apply_changes, renamed by 0013), then
-- the evictions that waited (0013).
CREATE OR REPLACE FUNCTION cv_sync.apply_changes(p_source uuid, p_changes cv_sync.change[], p_catchup boolean, p_log boolean)
  RETURNS jsonb
  LANGUAGE plpgsql
  SET search_path = ''
AS $$
DECLARE
  v_result jsonb := cv_sync.apply_received(p_source, p_changes, p_catchup, p_log);
BEGIN
  RETURN v_result || jsonb_build_object('evicted',
    (v_result ->> 'evicted')::bigint + cv_sync.evict_deferred(p_changes));
END
$$;

-- A cv_sync function this file creates for the first time would be PUBLIC's to call: taken back
-- (and the RPC functions' grants kept) as at the end of every sync migration.
CALL cv_sync.grant_rpc();
