-- 0013 Evictions that wait (clinic servers). An eviction (0008, cv_sync.apply_changes) keeps a
-- row that something on this clinic server still references. Typically: the cloud cancels a
-- patient's last appointment at this branch while a receptionist here books the patient again;
-- the pull evicts the patient, whom the new booking references, so the patient stays; the push
-- sends the booking, which the cloud refuses (its author no longer sees the patient) and evicts
-- in a later pull. Nothing would ever evict the patient again: they would stay here for good,
-- outside the scope, no longer updated. Now a kept eviction waits in cv_sync.deferred_evictions
-- and is carried out by the first apply that finds the row unreferenced; an upsert from the
-- cloud (the row is back in the scope) takes it off the list.

CREATE TABLE cv_sync.deferred_evictions (
  table_name text NOT NULL,
  row_id uuid NOT NULL,
  deferred_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (table_name, row_id)
);

ALTER FUNCTION cv_sync.apply_changes(uuid, cv_sync.change[], boolean, boolean) RENAME TO apply_received;

-- After an apply of p_changes: lists its evictions the apply kept (the row is still here), drops
-- from the list the rows it upserted, and evicts every listed row nothing references any more,
-- children before parents. Returns how many rows it evicted.
CREATE FUNCTION cv_sync.evict_deferred(p_changes cv_sync.change[]) RETURNS bigint
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

-- Applies collapsed changes (cv_sync.apply_received, 0008), then the evictions that waited.
CREATE FUNCTION cv_sync.apply_changes(p_source uuid, p_changes cv_sync.change[], p_catchup boolean, p_log boolean)
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

CALL cv_sync.grant_rpc();
