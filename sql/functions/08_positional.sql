-- The positional batch: cv_sync_apply's p_changes with each table's columns named once and each
-- row sent as its values in that order, the metadata a change repeats (its row id, its origin,
-- its author) sent once or derived (PROTOCOL.md "cv_sync_apply"). Over the internet a clinic's
-- upload is not compressed by the transport (PostgREST takes request bodies as they come), so
-- this is what a change costs its upload link:
--   {"format": "positional",
--    "tables": [{"name": <table>, "columns": [<column>, ...]}, ...],
--    "authors": [<author>, ...],
--    "changes": [[<table>, op, [<value>, ...], version, base_version, hlc, changed_columns, resolves, <author>, seq], ...]}
-- <table> and <author> index `tables` and `authors` from 0 (<author> null when no signed-in
-- person made the change); row_id is the row's id and origin the node that ends its hlc. The
-- values are the JSON of the array form, moved and not converted: read, the batch is the array
-- of changes the sender held, so collapse() checks and applies it as it does that array.

-- A positional batch's entries, typed, in batch order, as collapse() reads the array form's
-- (row_id the row's id, origin the node ending the hlc): `seqs` beside `entries`, and the first
-- entry that is not [table, op, values, version, base_version, hlc, changed_columns, resolves,
-- author, seq] with a table of `tables` (distinct columns, a value for each) and an author of
-- `authors` or null. Read straight from the batch: building the array form first and reading that
-- took three times as long as reading the array form sent as text.
CREATE OR REPLACE FUNCTION cv_sync.positional_entries(p_batch jsonb, OUT entries cv_sync.change[], OUT seqs bigint[],
  OUT bad bigint)
  LANGUAGE plpgsql IMMUTABLE
  SET search_path = ''
AS $$
BEGIN
  IF jsonb_typeof(p_batch -> 'tables') IS DISTINCT FROM 'array'
    OR jsonb_typeof(p_batch -> 'changes') IS DISTINCT FROM 'array'
    OR jsonb_typeof(coalesce(p_batch -> 'authors', '[]')) IS DISTINCT FROM 'array' THEN
    RAISE EXCEPTION 'p_changes in the positional form needs "tables" and "changes" arrays, and "authors" an array when present'
      USING ERRCODE = 'CV005';
  END IF;
  WITH t AS (
    SELECT x.i - 1 AS idx, x.e ->> 'name' AS name, c.columns, array_position(c.columns, 'id') - 1 AS id_at,
      cardinality(c.columns) = (SELECT count(DISTINCT n) FROM unnest(c.columns) n) AND array_position(c.columns, NULL) IS NULL
        AS distinct_columns
    FROM jsonb_array_elements(p_batch -> 'tables') WITH ORDINALITY x(e, i)
    CROSS JOIN LATERAL (SELECT ARRAY(SELECT jsonb_array_elements_text(x.e -> 'columns'))) c(columns)
  )
  SELECT
    array_agg(ROW(t.name, (e.c -> 2 ->> t.id_at)::uuid, e.c ->> 1, r.row_data, (e.c ->> 3)::uuid, (e.c ->> 4)::uuid,
        right(e.c ->> 5, 36)::uuid, e.c ->> 5,
        CASE WHEN jsonb_typeof(e.c -> 6) = 'array' THEN ARRAY(SELECT jsonb_array_elements_text(e.c -> 6)) END,
        (e.c ->> 7)::uuid, p_batch -> 'authors' -> ((e.c ->> 8)::integer))::cv_sync.change
      ORDER BY e.n),
    array_agg((e.c ->> 9)::bigint ORDER BY e.n),
    min(e.n) FILTER (WHERE jsonb_typeof(e.c) IS DISTINCT FROM 'array' OR jsonb_array_length(e.c) <> 10
      OR t.name IS NULL OR NOT t.distinct_columns
      OR jsonb_typeof(e.c -> 2) IS DISTINCT FROM 'array' OR jsonb_array_length(e.c -> 2) <> cardinality(t.columns)
      OR jsonb_typeof(e.c -> 6) NOT IN ('array', 'null')
      OR (jsonb_typeof(e.c -> 8) IS DISTINCT FROM 'null'
        AND ((e.c ->> 8)::integer < 0 OR p_batch -> 'authors' -> ((e.c ->> 8)::integer) IS NULL)))
  INTO entries, seqs, bad
  FROM jsonb_array_elements(p_batch -> 'changes') WITH ORDINALITY e(c, n)
  LEFT JOIN t ON jsonb_typeof(e.c -> 0) = 'number' AND t.idx = (e.c ->> 0)::integer
  LEFT JOIN LATERAL (
    SELECT jsonb_object_agg(t.columns[v.i], v.value) AS row_data
    FROM jsonb_array_elements(e.c -> 2) WITH ORDINALITY v(value, i)
    WHERE jsonb_typeof(e.c -> 2) = 'array'
  ) r ON true;
END
$$;
REVOKE ALL ON FUNCTION cv_sync.positional_entries(jsonb) FROM PUBLIC;

-- 0007's, taking the positional form too, and reading either form once: its entries, typed, then
-- one change per row from them. Every entry is checked (0007 checked each row's last); a batch
-- that holds each row once, as most do, is its own collapse and skips the grouping.
CREATE OR REPLACE FUNCTION cv_sync.collapse(p_changes jsonb) RETURNS cv_sync.change[]
  LANGUAGE plpgsql STABLE
  SET search_path = ''
AS $$
DECLARE
  v_entries cv_sync.change[];
  v_seqs bigint[];
  v_result cv_sync.change[];
  v_bad bigint;
  v_once boolean;
  v_positional boolean := jsonb_typeof(p_changes) = 'object' AND p_changes ->> 'format' = 'positional';
BEGIN
  IF NOT v_positional AND jsonb_typeof(p_changes) IS DISTINCT FROM 'array' THEN
    RAISE EXCEPTION 'p_changes must be a JSON array of changes, or a batch {"format": "positional", ...}' USING ERRCODE = 'CV005';
  END IF;
  BEGIN
    IF v_positional THEN
      SELECT p.entries, p.seqs, p.bad INTO v_entries, v_seqs, v_bad FROM cv_sync.positional_entries(p_changes) p;
      IF v_bad IS NOT NULL THEN
        RAISE EXCEPTION 'positional change #% is not [table, op, values, version, base_version, hlc, changed_columns, resolves, author, seq] with a table of "tables" (distinct columns, a value for each) and an author of "authors" or null',
          v_bad USING ERRCODE = 'CV005';
      END IF;
    ELSE
      SELECT array_agg(ROW(w.table_name, w.row_id, w.op, w.row_data, w.version, w.base_version, w.origin, w.hlc,
            w.changed_columns, w.resolves, w.author)::cv_sync.change ORDER BY w.ord),
        array_agg(w.seq ORDER BY w.ord)
      INTO v_entries, v_seqs
      FROM ROWS FROM (jsonb_to_recordset(p_changes)
          AS ("table" text, row_id uuid, op text, "row" jsonb, version uuid, base_version uuid, origin uuid, hlc text,
            changed_columns text[], resolves uuid, author jsonb, seq bigint))
        WITH ORDINALITY AS w(table_name, row_id, op, row_data, version, base_version, origin, hlc, changed_columns,
          resolves, author, seq, ord);
    END IF;
    SELECT min(w.ord) FILTER (WHERE s.table_name IS NULL OR w.row_id IS NULL OR w.version IS NULL OR w.origin IS NULL
        OR w.op IS NULL OR w.op NOT IN ('upsert', 'delete', 'evict')
        OR length(w.hlc) IS DISTINCT FROM 63 OR right(w.hlc, 36) <> w.origin::text
        OR jsonb_typeof(w.row_data) IS DISTINCT FROM 'object' OR (w.row_data ->> 'id')::uuid IS DISTINCT FROM w.row_id),
      count(*) = count(DISTINCT (w.table_name, w.row_id))
    INTO v_bad, v_once
    FROM unnest(v_entries) WITH ORDINALITY AS w(table_name, row_id, op, row_data, version, base_version, origin, hlc,
      changed_columns, resolves, author, ord)
    LEFT JOIN cv_sync.synced_tables s ON s.table_name = w.table_name;
    -- Each row once (a page of new rows, most pages): every entry is its row's collapsed change.
    IF v_once OR v_bad IS NOT NULL THEN
      v_result := v_entries;
    ELSE
      WITH n AS (
        SELECT * FROM unnest(v_entries, v_seqs) WITH ORDINALITY AS n(table_name, row_id, op, row_data, version,
          base_version, origin, hlc, changed_columns, resolves, author, seq, ord)
      ), per_row AS (
        SELECT n.table_name, n.row_id, count(*) AS entries,
          (array_agg(n.ord ORDER BY n.seq DESC, n.ord DESC))[1] AS last_ord,
          (array_agg(n.base_version ORDER BY n.seq, n.ord))[1] AS base_version,
          bool_or(n.changed_columns IS NULL) AS all_columns,
          (array_agg(n.resolves ORDER BY n.seq DESC, n.ord DESC) FILTER (WHERE n.resolves IS NOT NULL))[1] AS resolves
        FROM n GROUP BY n.table_name, n.row_id
      ), columns_changed AS (
        SELECT n.table_name, n.row_id, array_agg(DISTINCT c.name ORDER BY c.name) AS names
        FROM n JOIN per_row r ON r.table_name = n.table_name AND r.row_id = n.row_id AND r.entries > 1
        CROSS JOIN LATERAL unnest(n.changed_columns) AS c(name)
        GROUP BY n.table_name, n.row_id
      )
      SELECT array_agg(ROW(w.table_name, w.row_id, w.op, w.row_data, w.version, r.base_version, w.origin, w.hlc,
          CASE WHEN r.all_columns THEN NULL WHEN r.entries = 1 THEN w.changed_columns ELSE coalesce(c.names, '{}') END,
          r.resolves, w.author)::cv_sync.change)
      INTO v_result
      FROM unnest(v_entries) WITH ORDINALITY AS w(table_name, row_id, op, row_data, version, base_version, origin, hlc,
        changed_columns, resolves, author, ord)
      JOIN per_row r ON r.last_ord = w.ord
      LEFT JOIN columns_changed c ON c.table_name = w.table_name AND c.row_id = w.row_id;
    END IF;
  EXCEPTION WHEN invalid_text_representation OR invalid_parameter_value OR datatype_mismatch OR data_exception THEN
    RAISE EXCEPTION 'p_changes holds a malformed change: %', SQLERRM USING ERRCODE = 'CV005';
  END;
  IF v_bad IS NOT NULL THEN
    RAISE EXCEPTION 'change #% is not a valid change of a synced table: %', v_bad,
      left(((CASE WHEN v_positional THEN p_changes -> 'changes' ELSE p_changes END) -> (v_bad::integer - 1))::text, 300)
      USING ERRCODE = 'CV005';
  END IF;
  RETURN coalesce(v_result, '{}');
END
$$;
