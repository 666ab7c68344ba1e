-- The sync's apply (0007, 0008, 0013; packages/sync-engine/PROTOCOL.md is the specification).

-- Writes rows verbatim ('insert' or 'update'; their ids locked or absent). A missing parent that
-- this node deleted is restored (the delete loses to a row that still needs it); a parent never
-- seen is SQLSTATE 23503: it is in the source's log beyond this page (a child written by a
-- transaction with a lower id than its parent's), so the engine retries with a larger page.
-- A row absent when classified and present at the insert was written concurrently: its id's
-- unique violation is serialization_failure, and the retry classifies it again (plain inserts,
-- not ON CONFLICT's speculative ones: 9 of the 114 ms 4,000 new patients took). A unique
-- violation of another key (the same patient registered on both sides) is CV004: a person must
-- decide which record stays, the machine cannot.
CREATE OR REPLACE FUNCTION cv_sync.write_rows(p_table text, p_kind text, p_changes cv_sync.change[]) RETURNS void
  LANGUAGE plpgsql
  SET search_path = ''
AS $$
DECLARE
  v_columns text;
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
          'INSERT INTO public.%1$I SELECT r.* FROM unnest($1) c, jsonb_populate_record(NULL::public.%1$I, c.row_data) r',
          p_table) USING p_changes;
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
        IF p_kind = 'insert' AND EXISTS (SELECT FROM pg_catalog.pg_constraint k
          WHERE k.conrelid = format('public.%I', p_table)::regclass AND k.contype = 'p' AND k.conname = v_constraint)
        THEN
          RAISE EXCEPTION 'rows of % were written concurrently with this apply', p_table
            USING ERRCODE = 'serialization_failure', HINT = 'retry the batch';
        END IF;
        RAISE EXCEPTION 'cannot apply % rows: % (%); the same record exists twice under different ids', p_table, v_detail, v_constraint
          USING ERRCODE = 'CV004', HINT = 'merge or correct one of the two records on either side, then sync again';
    END;
  END LOOP;
END
$$;

-- After an apply of p_changes (0013: why an eviction waits): lists its evictions the apply kept (the row is still here), drops
-- from the list the rows it upserted, and evicts every listed row nothing references any more,
-- children before parents. Returns how many rows it evicted. Nothing to do (nothing waits, no
-- eviction in the batch: a clinic's every apply, the cloud's nearly every one) is found first:
-- the passes over the batch took 7.5 ms for 4,000 changes.
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
  IF NOT EXISTS (SELECT FROM cv_sync.deferred_evictions) AND NOT EXISTS (SELECT FROM unnest(p_changes) c WHERE c.op = 'evict') THEN
    RETURN 0;
  END IF;
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

-- The latest of a batch's times, each its batch's latest (an HLC's physical milliseconds, a row's
-- updated_at and created_at), and which of them it is: what the clock check of the ordinary apply
-- and of an initial-sync page weighs.
CREATE OR REPLACE FUNCTION cv_sync.latest_time(p_hlc_physical bigint, p_updated_at timestamptz,
  p_created_at timestamptz, OUT what text, OUT at timestamptz)
  LANGUAGE sql STABLE
  SET search_path = ''
AS $$
  SELECT x.what, x.at FROM (VALUES ('HLC', pg_catalog.to_timestamp(p_hlc_physical / 1000.0)),
    ('updated_at', p_updated_at), ('created_at', p_created_at)) x(what, at)
  ORDER BY x.at DESC NULLS LAST LIMIT 1
$$;

-- CV009 (cv_sync.check_clock) when p_at, the p_what of a change of p_table, is later than this
-- node's clock plus the allowed skew.
CREATE OR REPLACE FUNCTION cv_sync.check_change_time(p_table text, p_what text, p_at timestamptz) RETURNS void
  LANGUAGE plpgsql VOLATILE
  SET search_path = ''
AS $$
BEGIN
  PERFORM cv_sync.check_clock(p_at, format('the %s of a change of %s from the other node', p_what, p_table),
    'check the clocks of that node and of this server (NTP); sync resumes by itself once the change is no longer ahead');
END
$$;

-- CV009 when a change is stamped later than this node's clock plus the allowed skew: its HLC, or
-- its row's created_at/updated_at (0007's, which sorted every change's three times: 15 ms for
-- 4,000 changes, now 6). Applied, it would win every later last-write-wins decision here, and
-- raise hlc_floor, and with it every later stamp of this node, into the future (then on to every
-- node downstream). The latest is checked and named, with its table looked up only when it is
-- ahead of this clock at all; the caller raises before writing anything, so the batch is refused
-- whole and the cursor stays.
CREATE OR REPLACE FUNCTION cv_sync.check_changes_clock(p_changes cv_sync.change[]) RETURNS void
  LANGUAGE plpgsql
  SET search_path = ''
AS $$
DECLARE
  v_max record;
  v_latest record;
  v_table text;
BEGIN
  SELECT max(cv_sync.hlc_physical(c.hlc)) AS hlc, max((c.row_data ->> 'updated_at')::timestamptz) AS updated_at,
    max((c.row_data ->> 'created_at')::timestamptz) AS created_at
  INTO v_max FROM unnest(p_changes) c;
  SELECT * INTO v_latest FROM cv_sync.latest_time(v_max.hlc, v_max.updated_at, v_max.created_at);
  IF v_latest.at > pg_catalog.clock_timestamp() THEN
    SELECT c.table_name INTO v_table FROM unnest(p_changes) c
    WHERE CASE v_latest.what WHEN 'HLC' THEN cv_sync.hlc_physical(c.hlc) = v_max.hlc
      WHEN 'updated_at' THEN (c.row_data ->> 'updated_at')::timestamptz = v_max.updated_at
      ELSE (c.row_data ->> 'created_at')::timestamptz = v_max.created_at END
    LIMIT 1;
  END IF;
  PERFORM cv_sync.check_change_time(v_table, v_latest.what, v_latest.at);
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
