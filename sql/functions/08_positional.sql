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
-- took three times as long as reading the array form sent as text. Each row's object is built by
-- one jsonb_build_object per table, its keys the table's columns (literals of a statement made for
-- this batch): an aggregate per row over its values took 45 of the 2,000-change page's 240 ms on
-- the cloud.
CREATE OR REPLACE FUNCTION cv_sync.positional_entries(p_batch jsonb, OUT entries cv_sync.change[], OUT seqs bigint[],
  OUT bad bigint)
  LANGUAGE plpgsql IMMUTABLE
  SET search_path = ''
AS $$
DECLARE
  v_tables jsonb;
  v_objects text;
BEGIN
  IF jsonb_typeof(p_batch -> 'tables') IS DISTINCT FROM 'array'
    OR jsonb_typeof(p_batch -> 'changes') IS DISTINCT FROM 'array'
    OR jsonb_typeof(coalesce(p_batch -> 'authors', '[]')) IS DISTINCT FROM 'array' THEN
    RAISE EXCEPTION 'p_changes in the positional form needs "tables" and "changes" arrays, and "authors" an array when present'
      USING ERRCODE = 'CV005';
  END IF;
  -- Each table: its index, name, columns, where its id is, and whether its columns are distinct.
  SELECT coalesce(jsonb_agg(jsonb_build_object('idx', x.i - 1, 'name', x.e ->> 'name', 'columns', c.columns,
      'id_at', array_position(c.columns, 'id') - 1,
      'distinct', cardinality(c.columns) = (SELECT count(DISTINCT n) FROM unnest(c.columns) n)
        AND array_position(c.columns, NULL) IS NULL)), '[]')
  INTO v_tables
  FROM jsonb_array_elements(p_batch -> 'tables') WITH ORDINALITY x(e, i)
  CROSS JOIN LATERAL (SELECT ARRAY(SELECT jsonb_array_elements_text(x.e -> 'columns'))) c(columns);
  -- The row object of an entry of each table with distinct columns, from its values (e.c -> 2):
  -- at most 50 pairs per jsonb_build_object (100 arguments), joined with || beyond that.
  SELECT string_agg(format('WHEN %s THEN %s', t.e ->> 'idx', o.built), ' ')
  INTO v_objects
  FROM jsonb_array_elements(v_tables) t(e)
  CROSS JOIN LATERAL (
    SELECT coalesce(string_agg(format('jsonb_build_object(%s)', g.pairs), ' || ' ORDER BY g.part), '''{}''::jsonb') AS built
    FROM (SELECT (k.i - 1) / 50 AS part, string_agg(format('%L, e.c #> ''{2,%s}''', k.name, k.i - 1), ', ' ORDER BY k.i) AS pairs
      FROM jsonb_array_elements_text(t.e -> 'columns') WITH ORDINALITY k(name, i) GROUP BY (k.i - 1) / 50) g
  ) o
  WHERE (t.e ->> 'distinct')::boolean;
  EXECUTE format($sql$
    WITH t AS (
      SELECT (x ->> 'idx')::integer AS idx, x ->> 'name' AS name,
        ARRAY(SELECT jsonb_array_elements_text(x -> 'columns')) AS columns, (x ->> 'id_at')::integer AS id_at,
        (x ->> 'distinct')::boolean AS distinct_columns
      FROM jsonb_array_elements($2) x
    )
    SELECT
      array_agg(ROW(t.name, (e.c -> 2 ->> t.id_at)::uuid, e.c ->> 1,
          CASE WHEN jsonb_typeof(e.c -> 2) = 'array' THEN CASE t.idx %s END END, (e.c ->> 3)::uuid,
          (e.c ->> 4)::uuid, right(e.c ->> 5, 36)::uuid, e.c ->> 5,
          CASE WHEN jsonb_typeof(e.c -> 6) = 'array' THEN ARRAY(SELECT jsonb_array_elements_text(e.c -> 6)) END,
          (e.c ->> 7)::uuid, $1 -> 'authors' -> ((e.c ->> 8)::integer))::cv_sync.change
        ORDER BY e.n),
      array_agg((e.c ->> 9)::bigint ORDER BY e.n),
      min(e.n) FILTER (WHERE jsonb_typeof(e.c) IS DISTINCT FROM 'array' OR jsonb_array_length(e.c) <> 10
        OR t.name IS NULL OR NOT t.distinct_columns
        OR jsonb_typeof(e.c -> 2) IS DISTINCT FROM 'array' OR jsonb_array_length(e.c -> 2) <> cardinality(t.columns)
        OR jsonb_typeof(e.c -> 6) NOT IN ('array', 'null')
        OR (jsonb_typeof(e.c -> 8) IS DISTINCT FROM 'null'
          AND ((e.c ->> 8)::integer < 0 OR $1 -> 'authors' -> ((e.c ->> 8)::integer) IS NULL)))
    FROM jsonb_array_elements($1 -> 'changes') WITH ORDINALITY e(c, n)
    LEFT JOIN t ON jsonb_typeof(e.c -> 0) = 'number' AND t.idx = (e.c ->> 0)::integer
  $sql$, coalesce(v_objects, 'WHEN NULL THEN NULL')) INTO entries, seqs, bad USING p_batch, v_tables;
END
$$;
REVOKE ALL ON FUNCTION cv_sync.positional_entries(jsonb) FROM PUBLIC;

-- 0007's, taking the positional form too, and reading either form once: its entries, typed, then
-- one change per row from them. Every entry is checked (0007 checked each row's last); a batch
-- that holds each row once, as most do, is its own collapse and skips the grouping. An HLC must
-- be digits where its two numbers are (cv_sync.hlc_shaped): its time is read as a bigint, which
-- also takes '9_9_9' or '0x1f' as a time in 1970, past the clock bound, while as text such a
-- stamp sorts after every real one and would win every conflict, and the engine refuses it in
-- the log it pulls.
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
        OR NOT cv_sync.hlc_shaped(w.hlc) OR right(w.hlc, 36) <> w.origin::text
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
  -- Neither message quotes the change, nor SQLERRM, which quotes the value it could not read:
  -- either may be a patient's.
  EXCEPTION WHEN invalid_text_representation OR invalid_parameter_value OR datatype_mismatch OR data_exception THEN
    RAISE EXCEPTION 'p_changes holds a malformed change: a field is not of its type (SQLSTATE %); nothing was applied',
      SQLSTATE USING ERRCODE = 'CV005';
  END;
  IF v_bad IS NOT NULL THEN
    RAISE EXCEPTION 'change #% is not a valid change of a synced table (its table, row id, version, origin, op, an HLC of 15 digits, a dot, 10 digits, a dot and the origin, and a row object of that id); nothing was applied',
      v_bad USING ERRCODE = 'CV005';
  END IF;
  RETURN coalesce(v_result, '{}');
END
$$;
