-- The deflated batch (packages/sync-engine/PROTOCOL.md "cv_sync_apply_deflated"): a clinic
-- server's upload, compressed. PostgREST takes a request body as sent and Supabase's gateway
-- does not decompress one, so what a clinic uploads is compressed inside the body: the
-- arguments of cv_sync_apply as JSON, in an OpenPGP message (RFC 4880) whose data is deflated,
-- because the only decompressor in a Supabase database is pgcrypto's OpenPGP reader (zlib). The
-- message is sealed with a passphrase everyone knows, 'centrovision-sync': it is a container,
-- not a secret (TLS protects the request; the node credential authorises it).

-- Where pgcrypto is: `extensions` on Supabase, `cv_crypto` elsewhere (0011, 0018); NULL without it.
CREATE OR REPLACE FUNCTION cv_sync.pgcrypto_schema() RETURNS name
  LANGUAGE sql STABLE
  SET search_path = ''
  RETURN (SELECT n.nspname FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
    WHERE e.extname = 'pgcrypto');
REVOKE ALL ON FUNCTION cv_sync.pgcrypto_schema() FROM PUBLIC;

-- The bytes of the OpenPGP message p_message, decompressed; NULL when they are no such message
-- (or this pgcrypto has no zlib). Only for the SECURITY DEFINER functions below: pgcrypto's
-- schema is no API role's.
CREATE OR REPLACE FUNCTION cv_sync.inflate(p_message bytea) RETURNS bytea
  LANGUAGE plpgsql VOLATILE
  SET search_path = ''
AS $$
DECLARE
  v_schema name := cv_sync.pgcrypto_schema();
  v_data bytea;
BEGIN
  IF v_schema IS NULL THEN
    RETURN NULL;
  END IF;
  -- pgcrypto reports a damaged or foreign message, and a compression it was built without, as
  -- external_routine_invocation_exception, its messages fixed sentences.
  EXECUTE format('SELECT %I.pgp_sym_decrypt_bytea($1, $2)', v_schema) INTO v_data
    USING p_message, 'centrovision-sync';
  RETURN v_data;
EXCEPTION WHEN external_routine_invocation_exception THEN
  RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION cv_sync.inflate(bytea) FROM PUBLIC;

-- Whether this database reads a deflated batch: pgcrypto is there, and built with zlib.
CREATE OR REPLACE FUNCTION cv_sync.inflates() RETURNS boolean
  LANGUAGE plpgsql VOLATILE
  SET search_path = ''
AS $$
DECLARE
  v_schema name := cv_sync.pgcrypto_schema();
  v_message bytea;
BEGIN
  IF v_schema IS NULL THEN
    RETURN false;
  END IF;
  EXECUTE format('SELECT %I.pgp_sym_encrypt_bytea($1, $2, $3)', v_schema) INTO v_message
    USING '\x7b7d'::bytea, 'centrovision-sync', 'compress-algo=1, s2k-mode=0, cipher-algo=aes128';
  RETURN cv_sync.inflate(v_message) = '\x7b7d'::bytea;
EXCEPTION WHEN external_routine_invocation_exception THEN
  RETURN false;
END
$$;
REVOKE ALL ON FUNCTION cv_sync.inflates() FROM PUBLIC;

-- cv_sync_apply with its arguments in one deflated batch: the whole request body
-- (Content-Type: application/octet-stream, PostgREST's single unnamed bytea parameter), the
-- OpenPGP message of the JSON {p_source, p_expected, p_cursor, p_changes[, p_catchup]}. At most
-- 256 KiB: zlib expands a body at most about 1,000-fold, so a forged one makes this backend hold
-- at most about 260 MB before cv_sync_apply judges it; the engine sends a larger batch
-- uncompressed. The caller is checked before anything is decompressed. What is not such a
-- batch is CV005, nothing applied.
CREATE OR REPLACE FUNCTION public.cv_sync_apply_deflated(bytea) RETURNS jsonb
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER
  SET search_path = ''
AS $$
DECLARE
  v_data bytea;
  v_call jsonb;
BEGIN
  PERFORM cv_sync.require_node(NULL);
  IF $1 IS NULL OR octet_length($1) > 262144 THEN
    RAISE EXCEPTION 'a deflated batch must be 1 to 262144 bytes long, this one is % bytes', coalesce(octet_length($1), 0)
      USING ERRCODE = 'CV005', HINT = 'send a larger batch to cv_sync_apply, uncompressed';
  END IF;
  v_data := cv_sync.inflate($1);
  IF v_data IS NULL THEN
    RAISE EXCEPTION 'the body is not a deflated batch (an OpenPGP message sealed with ''centrovision-sync'', its data deflated), or this database''s pgcrypto cannot decompress it'
      USING ERRCODE = 'CV005', HINT = 'send the batch to cv_sync_apply, uncompressed';
  END IF;
  BEGIN
    v_call := convert_from(v_data, 'UTF8')::jsonb;
  EXCEPTION WHEN data_exception THEN
    v_call := NULL;
  END;
  IF jsonb_typeof(v_call) IS DISTINCT FROM 'object' OR NOT v_call ?& ARRAY['p_source', 'p_expected', 'p_cursor', 'p_changes']
    OR jsonb_typeof(coalesce(v_call -> 'p_catchup', 'false')) <> 'boolean'
  THEN
    RAISE EXCEPTION 'a deflated batch must hold a JSON object of cv_sync_apply''s arguments (p_source, p_expected, p_cursor, p_changes, p_catchup)'
      USING ERRCODE = 'CV005';
  END IF;
  RETURN public.cv_sync_apply(v_call -> 'p_source', v_call -> 'p_expected', v_call -> 'p_cursor',
    v_call -> 'p_changes', coalesce((v_call -> 'p_catchup')::boolean, false));
END
$$;

-- The sync role, the service key and, on the cloud, a clinic server's node credential
-- (cv_sync.require_node checks it inside), as cv_sync_apply's (00_grant_rpc.sql).
CALL cv_sync.grant_rpc();

-- 0017's, saying which forms of p_changes this node's cv_sync_apply takes (`apply_formats`): an
-- engine sends the positional batch only to a node that lists it, and the deflated batch only to
-- one that lists `deflated` (cv_sync_apply_deflated, where pgcrypto decompresses).
CREATE OR REPLACE FUNCTION public.cv_sync_node() RETURNS jsonb
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER
  SET search_path = ''
AS $$
BEGIN
  PERFORM cv_sync.require_node(NULL);
  RETURN (
    SELECT jsonb_build_object(
      'node_id', n.node_id, 'node_name', n.node_name, 'epoch', n.epoch,
      'fingerprint', coalesce(
        CASE WHEN cv_sync.fingerprint_maintained() THEN cv_sync.kept_fingerprint() END,
        cv_sync.refresh_fingerprint()),
      'now', clock_timestamp(), 'max_txid', pg_snapshot_xmax(pg_current_snapshot())::text::bigint,
      'open_conflicts', (SELECT count(*) FROM cv_sync.conflicts k WHERE k.status = 'open'),
      'scope', cv_sync.node_scope(),
      'quarantined', (SELECT count(*) FROM cv_sync.quarantine q
        WHERE NOT cv_sync.called_by_node()
          OR q.source = (SELECT c.node_id FROM cv_sync.clinic_nodes c WHERE c.user_id = auth.uid())),
      'apply_formats', CASE WHEN cv_sync.inflates() THEN jsonb_build_array('array', 'positional', 'deflated')
        ELSE jsonb_build_array('array', 'positional') END)
    FROM cv_sync.node n
  );
END
$$;
