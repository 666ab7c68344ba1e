-- The cloud's wake-ups (sql/0016) name, besides the origins, the scopes of what the statement
-- added (`scopes`: the branches whose clinic servers hold the rows before or after, with
-- cv_sync.everywhere() for rows every clinic holds), so a clinic server wakes only for changes a
-- pull would bring it: fifty clinics no longer all start a cycle for every write anywhere. More
-- than 200 scopes in one statement are sent as null (unknown: every clinic wakes). Like the
-- origins, the scopes name branches, never a row or a table.
CREATE OR REPLACE FUNCTION cv_sync.wake_nodes() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = ''
AS $$
DECLARE
  v_scopes uuid[];
BEGIN
  -- A statement trigger fires for an INSERT … SELECT that added nothing, too.
  IF NOT EXISTS (SELECT 1 FROM added) THEN
    RETURN NULL;
  END IF;
  SELECT coalesce(array_agg(DISTINCT s.branch), '{}') INTO v_scopes
  FROM added a CROSS JOIN LATERAL unnest(coalesce(a.scope, '{}') || coalesce(a.scope_before, '{}')) AS s(branch);
  PERFORM realtime.send(
    jsonb_build_object(
      'origins', (SELECT jsonb_agg(DISTINCT a.origin) FROM added a),
      'scopes', CASE WHEN cardinality(v_scopes) <= 200 THEN to_jsonb(v_scopes) END),
    'changes', 'cv_sync', true);
  RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION cv_sync.wake_nodes() FROM PUBLIC;
