-- cv_util.update_columns(table): the column list of an UPDATE that writes a whole row of
-- public.<table> from a record (`SET (list) = (SELECT list FROM jsonb_populate_record(...))`):
-- every column but id, quoted, in table order. One definition for both writers of whole rows, the
-- sync's verbatim apply (cv_sync.write_rows, as the owner) and a PC's writes (cv_client_apply, as
-- its person), so a column the two would treat differently cannot creep in. Runs as its caller and
-- reads only the catalog, which every role may read anyway.
CREATE OR REPLACE FUNCTION cv_util.update_columns(p_table text) RETURNS text
  LANGUAGE sql STABLE
  SET search_path = ''
  RETURN (
    SELECT pg_catalog.string_agg(pg_catalog.format('%I', a.attname), ', ' ORDER BY a.attnum)
    FROM pg_catalog.pg_attribute a
    WHERE a.attrelid = pg_catalog.format('public.%I', p_table)::pg_catalog.regclass
      AND a.attnum > 0 AND NOT a.attisdropped AND a.attname <> 'id'
  );

-- For cv_client_apply's person (0010); the owner's functions need no grant.
REVOKE ALL ON FUNCTION cv_util.update_columns(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cv_util.update_columns(text) TO authenticated;
