-- 0003 Roles, and who the person is.
--
-- Group roles (NOLOGIN; login users are created by the deployment and granted one of them):
--   centrovision_app   a clinic PC's login on the clinic server. By itself it reads and writes no
--                      EHR row: it may only sign in (0011) and ask the router's two questions
--                      (0010). To work it sets role `authenticated` together with a verified
--                      clinic session, and then the same row-level policies as the cloud decide
--                      (0004). NOINHERIT, so a PC login never holds `authenticated`'s grants
--                      without naming the role.
--   centrovision_sync  what the sync daemon needs: its functions (0005–0008, 0011), which run as
--                      their owner. It holds no table: its login alone reads and writes no row.
--
-- Who the person is. On Supabase, `auth.uid()` comes from the request's JWT, verified by the API
-- gateway. The clinic server has no gateway: here this file creates schema `auth` whose `uid()`
-- and `jwt()` return the claims of the **clinic session** in the connection's setting
-- `centrovision.session` — verified inside PostgreSQL (in full the first time; then found by its
-- hash in cv_auth.verified_sessions until it expires or access changes):
--   * a clinic session is an HS256 JWT signed with this clinic's own key (cv_auth.signing_key,
--     readable by the owner alone). The cloud mints one for a person signed in online (0011,
--     `cv_clinic_session`, with the key the daemon registered there); the clinic server mints one
--     itself for an offline sign-in against a verifier left by an earlier online sign-in (0011);
--   * the signature, `aud`, `kid`, expiry (bounded: at most a day ahead of this server's clock),
--     the user's disabled flag and the session's sign-out are checked; anything wrong raises CV010
--     (never a silent "nobody"), a missing setting means nobody, and nobody sees no row.
-- HMAC-SHA-256 is computed from the built-in sha256() with the key's two pads stored beside it
-- (RFC 2104), so neither tier needs an extension for it. Nothing on the clinic server can mint a
-- cloud identity: the cloud's tokens are ES256 and its signing key never leaves it.
--
-- Roles are cluster-wide while migrations run per database, so creating them must succeed when
-- another database (or a concurrent test) already created them: no IF NOT EXISTS exists for roles,
-- and a check-then-create races, hence the exception handlers.

DO $roles$
DECLARE
  v_role text;
BEGIN
  FOREACH v_role IN ARRAY ARRAY['centrovision_app', 'centrovision_sync'] LOOP
    BEGIN
      EXECUTE format('CREATE ROLE %I NOLOGIN', v_role);
    EXCEPTION WHEN duplicate_object OR unique_violation THEN
      NULL;
    END;
  END LOOP;
  -- Only when it is not so yet: where another login created the role (for another database of the
  -- cluster), a CREATEROLE owner such as Supabase's postgres may not alter it (PostgreSQL 16+).
  IF (SELECT r.rolinherit FROM pg_roles r WHERE r.rolname = 'centrovision_app') THEN
    ALTER ROLE centrovision_app NOINHERIT;
  END IF;
END
$roles$;

-- PostgreSQL 15+ already denies PUBLIC CREATE on schema public; older clusters and restored dumps
-- may not. Without it any login could plant a function that shadows ours.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

GRANT USAGE ON SCHEMA public TO centrovision_app, centrovision_sync;


-- Session tokens on both tiers: HMAC from stored pads, base64url.
CREATE SCHEMA cv_auth;
REVOKE ALL ON SCHEMA cv_auth FROM PUBLIC;

CREATE FUNCTION cv_auth.hmac_pads(p_key bytea, OUT inner_pad bytea, OUT outer_pad bytea)
  LANGUAGE plpgsql IMMUTABLE STRICT
  SET search_path = ''
AS $$
DECLARE
  v_block bytea := p_key || decode(repeat('00', 64 - length(p_key)), 'hex');
BEGIN
  IF length(p_key) NOT BETWEEN 32 AND 64 THEN
    RAISE EXCEPTION 'a clinic key has 32 to 64 bytes, not %', length(p_key) USING ERRCODE = 'CV005';
  END IF;
  inner_pad := v_block;
  outer_pad := v_block;
  FOR i IN 0..63 LOOP
    inner_pad := set_byte(inner_pad, i, get_byte(v_block, i) # 54);
    outer_pad := set_byte(outer_pad, i, get_byte(v_block, i) # 92);
  END LOOP;
END
$$;

CREATE FUNCTION cv_auth.b64url(p_data bytea) RETURNS text
  LANGUAGE sql IMMUTABLE STRICT
  SET search_path = ''
  RETURN rtrim(translate(encode(p_data, 'base64'), E'+/\n', '-_'), '=');

-- A signed HS256 JWT of p_claims: header {alg, typ, kid}.
CREATE FUNCTION cv_auth.sign(p_claims jsonb, p_key_id uuid, p_inner bytea, p_outer bytea) RETURNS text
  LANGUAGE plpgsql IMMUTABLE STRICT
  SET search_path = ''
AS $$
DECLARE
  v_signed text := cv_auth.b64url(convert_to(
      jsonb_build_object('alg', 'HS256', 'typ', 'JWT', 'kid', p_key_id)::text, 'UTF8'))
    || '.' || cv_auth.b64url(convert_to(p_claims::text, 'UTF8'));
BEGIN
  RETURN v_signed || '.' || cv_auth.b64url(sha256(p_outer || sha256(p_inner || convert_to(v_signed, 'UTF8'))));
END
$$;

REVOKE ALL ON FUNCTION cv_auth.hmac_pads(bytea), cv_auth.b64url(bytea),
  cv_auth.sign(jsonb, uuid, bytea, bytea) FROM PUBLIC;

-- The clinic server's side: its key, the people the cloud disabled, sessions signed out here, and
-- schema auth. Supabase has its own schema auth (a database that has it is the cloud).
DO $clinic$
BEGIN
  IF to_regnamespace('auth') IS NOT NULL THEN
    RETURN;
  END IF;

  BEGIN
    CREATE ROLE authenticated NOLOGIN;
  EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
  END;
  GRANT authenticated TO centrovision_app;

  -- One key per clinic server, made here from the server's strong random source (gen_random_uuid).
  CREATE TABLE cv_auth.signing_key (
    singleton boolean PRIMARY KEY DEFAULT true CONSTRAINT signing_key_singleton CHECK (singleton),
    key_id uuid NOT NULL DEFAULT gen_random_uuid(),
    key bytea NOT NULL,
    inner_pad bytea NOT NULL,
    outer_pad bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    -- Moves on with every change that can take access away or move it: a user disabled or
    -- enabled, a session signed out, a branch membership changed. A remembered verification
    -- carries the value it was made under, so such a change makes every session verify again.
    access_generation bigint NOT NULL DEFAULT 1
  );
  INSERT INTO cv_auth.signing_key (key, inner_pad, outer_pad)
  SELECT k.key, p.inner_pad, p.outer_pad
  FROM (SELECT sha256(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid())
      || uuid_send(gen_random_uuid())) AS key) k
  CROSS JOIN LATERAL cv_auth.hmac_pads(k.key) p;

  -- Filled by the sync daemon from the cloud (banned users) on every cycle.
  CREATE TABLE cv_auth.disabled_users (
    user_id uuid PRIMARY KEY,
    seen_at timestamptz NOT NULL DEFAULT now()
  );

  -- Sessions signed out here, kept until they would have expired anyway.
  CREATE TABLE cv_auth.ended_sessions (
    sid uuid PRIMARY KEY,
    expires_at timestamptz NOT NULL
  );

  CREATE SCHEMA auth;

  -- Tokens this server has verified (by hash): the claims they carry, the person's branches, and
  -- the key and access generation they were verified under, so a session's later statements cost
  -- one lookup instead of the signature, the decoding and the revocation checks. UNLOGGED: a crash
  -- only empties it, and the next statement verifies again. Written only by cv_auth.verify().
  CREATE UNLOGGED TABLE cv_auth.verified_sessions (
    token_hash bytea PRIMARY KEY,
    key_id uuid NOT NULL,
    access_generation bigint NOT NULL,
    claims jsonb NOT NULL,
    branch_ids uuid[] NOT NULL,
    expires_at timestamptz NOT NULL
  );

  -- Moves the access generation on (see cv_auth.signing_key). In the changing transaction, so a
  -- verification that read the generation before the change committed is not found afterwards.
  CREATE FUNCTION cv_auth.access_changed() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = ''
  AS $fn$
  BEGIN
    UPDATE cv_auth.signing_key SET access_generation = access_generation + 1;
    RETURN NULL;
  END
  $fn$;
  REVOKE ALL ON FUNCTION cv_auth.access_changed() FROM PUBLIC;
  CREATE TRIGGER cv_access_changed AFTER INSERT OR UPDATE OR DELETE ON cv_auth.disabled_users
    FOR EACH ROW EXECUTE FUNCTION cv_auth.access_changed();
  CREATE TRIGGER cv_access_changed AFTER INSERT OR UPDATE OR DELETE ON cv_auth.ended_sessions
    FOR EACH ROW EXECUTE FUNCTION cv_auth.access_changed();
  CREATE TRIGGER cv_access_changed AFTER INSERT OR UPDATE OR DELETE ON public.user_branches
    FOR EACH ROW EXECUTE FUNCTION cv_auth.access_changed();
  CREATE TRIGGER cv_access_changed_all AFTER TRUNCATE ON cv_auth.disabled_users
    FOR EACH STATEMENT EXECUTE FUNCTION cv_auth.access_changed();
  CREATE TRIGGER cv_access_changed_all AFTER TRUNCATE ON cv_auth.ended_sessions
    FOR EACH STATEMENT EXECUTE FUNCTION cv_auth.access_changed();
  CREATE TRIGGER cv_access_changed_all AFTER TRUNCATE ON public.user_branches
    FOR EACH STATEMENT EXECUTE FUNCTION cv_auth.access_changed();

  -- Verifies a clinic session in full and remembers it: the signature first, on the token's text,
  -- so nothing an attacker wrote is decoded; what follows was written by a holder of the key, this
  -- server or the cloud. Then the person's disabled flag and the session's sign-out, read after
  -- the access generation (a change committed in between moves it on, and this verification is
  -- not found again). Raises CV010 when the token is not good.
  CREATE FUNCTION cv_auth.verify(p_token text) RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
  AS $fn$
  DECLARE
    v_signature text := split_part(p_token, '.', -1);
    v_signed text := left(p_token, -length(split_part(p_token, '.', -1)) - 1);
    v_key_id uuid;
    v_generation bigint;
    v_valid boolean;
    v_header jsonb;
    v_claims jsonb;
    v_exp numeric;
  BEGIN
    SELECT k.key_id, k.access_generation, v_signature = rtrim(replace(replace(encode(sha256(k.outer_pad
        || sha256(k.inner_pad || convert_to(v_signed, 'UTF8'))), 'base64'), '+', '-'), '/', '_'), '=')
      INTO v_key_id, v_generation, v_valid
    FROM cv_auth.signing_key k;
    IF v_valid AND split_part(v_signed, '.', 2) <> '' AND split_part(v_signed, '.', 3) = '' THEN
      v_header := convert_from(decode(replace(replace(split_part(v_signed, '.', 1), '-', '+'), '_', '/')
        || repeat('=', (4 - length(split_part(v_signed, '.', 1)) % 4) % 4), 'base64'), 'UTF8')::jsonb;
      v_claims := convert_from(decode(replace(replace(split_part(v_signed, '.', 2), '-', '+'), '_', '/')
        || repeat('=', (4 - length(split_part(v_signed, '.', 2)) % 4) % 4), 'base64'), 'UTF8')::jsonb;
    END IF;
    IF NOT coalesce(v_header ->> 'alg' = 'HS256' AND v_header ->> 'kid' = v_key_id::text
      AND v_claims ->> 'aud' = 'centrovision-clinic'
      AND v_claims ->> 'role' = 'authenticated'
      AND jsonb_typeof(v_claims -> 'exp') = 'number'
      AND v_claims ->> 'sub' ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
      AND v_claims ->> 'sid' ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
      AND v_claims ->> 'sign_in' IN ('online', 'clinic'), false)
    THEN
      RAISE EXCEPTION 'the clinic session is not one this clinic server issued'
        USING ERRCODE = 'CV010', HINT = 'Sign in again.';
    END IF;
    v_exp := (v_claims ->> 'exp')::numeric;
    IF v_exp > extract(epoch FROM now() + interval '1 day') THEN
      RAISE EXCEPTION 'the clinic session expires too far ahead of this server''s clock'
        USING ERRCODE = 'CV010', HINT = 'Check the clocks of the clinic server and the cloud, then sign in again.';
    END IF;
    IF v_exp <= extract(epoch FROM now()) THEN
      RAISE EXCEPTION 'the clinic session has expired' USING ERRCODE = 'CV010', HINT = 'Sign in again.';
    END IF;
    IF EXISTS (SELECT FROM cv_auth.disabled_users d WHERE d.user_id = (v_claims ->> 'sub')::uuid) THEN
      RAISE EXCEPTION 'this user is disabled' USING ERRCODE = 'CV010', HINT = 'Ask the clinic''s administrator.';
    END IF;
    IF EXISTS (SELECT FROM cv_auth.ended_sessions e WHERE e.sid = (v_claims ->> 'sid')::uuid) THEN
      RAISE EXCEPTION 'the clinic session was signed out' USING ERRCODE = 'CV010', HINT = 'Sign in again.';
    END IF;
    BEGIN
      DELETE FROM cv_auth.verified_sessions v WHERE v.expires_at <= now();
      INSERT INTO cv_auth.verified_sessions (token_hash, key_id, access_generation, claims, branch_ids, expires_at)
      SELECT sha256(convert_to(p_token, 'UTF8')), v_key_id, v_generation, v_claims,
        array(SELECT ub.branch_id FROM public.user_branches ub WHERE ub.user_id = (v_claims ->> 'sub')::uuid),
        to_timestamp(v_exp)
      ON CONFLICT (token_hash) DO UPDATE
        SET key_id = excluded.key_id, access_generation = excluded.access_generation,
          branch_ids = excluded.branch_ids;
    EXCEPTION WHEN read_only_sql_transaction THEN
      -- A read-only transaction verifies without remembering.
      NULL;
    END;
    RETURN v_claims;
  END
  $fn$;

  -- The verified claims of this connection's clinic session; NULL when none is set. Every
  -- statement that asks who the user is runs this, so it is kept lean (measured in
  -- packages/adapter-postgres/bench/rls.bench.ts): a token verified before, under the current key
  -- and access generation, costs one lookup; expiry is checked on every call, and a disabled user
  -- or a sign-out moves the generation on, so each takes effect at the next statement.
  CREATE FUNCTION cv_auth.claims() RETURNS jsonb
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = ''
  AS $fn$
  DECLARE
    v_token text := current_setting('centrovision.session', true);
    v_claims jsonb;
    v_expires timestamptz;
  BEGIN
    IF v_token IS NULL OR v_token = '' THEN
      RETURN NULL;
    END IF;
    SELECT v.claims, v.expires_at INTO v_claims, v_expires
    FROM cv_auth.verified_sessions v
      JOIN cv_auth.signing_key k ON k.key_id = v.key_id AND k.access_generation = v.access_generation
    WHERE v.token_hash = sha256(convert_to(v_token, 'UTF8'));
    IF NOT FOUND THEN
      RETURN cv_auth.verify(v_token);
    END IF;
    IF v_expires <= now() THEN
      RAISE EXCEPTION 'the clinic session has expired' USING ERRCODE = 'CV010', HINT = 'Sign in again.';
    END IF;
    RETURN v_claims;
  END
  $fn$;

  -- SQL-standard bodies are bound when created, so they need no search_path, and without one
  -- PostgreSQL inlines them into the policies' queries (one function call less per statement).
  CREATE FUNCTION auth.jwt() RETURNS jsonb
    LANGUAGE sql STABLE
    RETURN cv_auth.claims();

  CREATE FUNCTION auth.uid() RETURNS uuid
    LANGUAGE sql STABLE
    RETURN (cv_auth.claims() ->> 'sub')::uuid;

  REVOKE ALL ON TABLE cv_auth.signing_key, cv_auth.disabled_users, cv_auth.ended_sessions,
    cv_auth.verified_sessions FROM PUBLIC;
  REVOKE ALL ON FUNCTION cv_auth.verify(text), cv_auth.claims(), auth.jwt(), auth.uid() FROM PUBLIC;
  GRANT USAGE ON SCHEMA auth, cv_auth TO authenticated;
  GRANT EXECUTE ON FUNCTION cv_auth.claims(), auth.jwt(), auth.uid() TO authenticated;
  GRANT USAGE ON SCHEMA public TO authenticated;
END
$clinic$;
