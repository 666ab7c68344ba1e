-- Generated from sql/0011_identity.sql by `npm run supabase:migrations`: do not edit (edit sql/0011_identity.sql and run that again).
-- 0011 Signing in to the clinic server: online through the cloud, offline at the clinic.
--
-- A clinic session (0003) is minted in one of two ways, and says which in its claim `sign_in`:
--   online  by the cloud, for the person of a Supabase session (`cv_clinic_session`), signed with
--           the key this clinic server's daemon registered there (`cv_clinic_register_key`). A PC
--           fetches it while it is online and keeps it (encrypted) for when the cloud is gone.
--   clinic  by the clinic server itself (`cv_auth.sign_in`), for a person who signed in online on
--           one of the clinic's PCs within `offline_days`: that sign-in left a bcrypt verifier of
--           the password here (`cv_auth.enroll`, only with an online session, only for its own
--           person). Failed attempts lock the account here for `lockout_minutes` after
--           `lockout_attempts`; a user the cloud disabled (copied here by the daemon on every
--           sync cycle: `cv_disabled_users` → `cv_clinic_set_disabled_users`) cannot sign in, and
--           their sessions stop working at once (0003 checks on every call).
-- The password never leaves the function call (no table, no log line); the verifier is bcrypt
-- (pgcrypto's crypt(), cost 10). Failed attempts are counted in a sequence per user, because
-- setval() is not undone by a rollback: a caller that aborts its transaction after a wrong answer
-- (or makes its own statement fail on one: `1 / (… ->> 'ok')::boolean::int`) still spends an
-- attempt; counted in a table, the lockout could be bypassed that way.

DO $identity$
DECLARE
  v_crypto text;
BEGIN
  IF to_regclass('cv_auth.signing_key') IS NULL THEN
    -- The cloud: the clinics' keys, and the two RPC functions around them.
    CREATE TABLE cv_auth.clinic_keys (
      key_id uuid PRIMARY KEY,
      inner_pad bytea NOT NULL,
      outer_pad bytea NOT NULL,
      registered_at timestamptz NOT NULL DEFAULT now()
    );
    REVOKE ALL ON TABLE cv_auth.clinic_keys FROM PUBLIC;

    CREATE FUNCTION public.cv_clinic_register_key(p_key_id uuid, p_key text) RETURNS void
      LANGUAGE plpgsql SECURITY DEFINER
      SET search_path = ''
    AS $fn$
    BEGIN
      PERFORM cv_sync.require_node(NULL);
      IF p_key_id IS NULL OR p_key IS NULL OR p_key !~ '^([0-9a-f]{2}){32,64}$' THEN
        RAISE EXCEPTION 'a clinic key is a key id and 32 to 64 bytes in lowercase hex' USING ERRCODE = 'CV005';
      END IF;
      INSERT INTO cv_auth.clinic_keys AS k (key_id, inner_pad, outer_pad)
      SELECT p_key_id, p.inner_pad, p.outer_pad FROM cv_auth.hmac_pads(decode(p_key, 'hex')) p
      ON CONFLICT (key_id) DO UPDATE
        SET inner_pad = excluded.inner_pad, outer_pad = excluded.outer_pad, registered_at = now()
        WHERE k.inner_pad IS DISTINCT FROM excluded.inner_pad;
    END
    $fn$;

    -- A clinic session for the signed-in person, valid 12 hours at the clinic whose key is p_key_id.
    CREATE FUNCTION public.cv_clinic_session(p_key_id uuid) RETURNS jsonb
      LANGUAGE plpgsql VOLATILE SECURITY DEFINER
      SET search_path = ''
    AS $fn$
    DECLARE
      v_user uuid := auth.uid();
      v_key cv_auth.clinic_keys;
      v_now bigint := floor(extract(epoch FROM now()))::bigint;
      v_exp bigint := v_now + 12 * 3600;
    BEGIN
      IF v_user IS NULL OR NOT EXISTS (SELECT FROM auth.users u WHERE u.id = v_user AND u.deleted_at IS NULL
          AND (u.banned_until IS NULL OR u.banned_until <= now())) THEN
        RAISE EXCEPTION 'only a signed-in, active user gets a clinic session' USING ERRCODE = '42501';
      END IF;
      SELECT * INTO v_key FROM cv_auth.clinic_keys k WHERE k.key_id = p_key_id;
      IF NOT FOUND THEN
        RAISE EXCEPTION 'no clinic server registered key %', p_key_id USING ERRCODE = 'CV011',
          HINT = 'Start the clinic''s sync daemon once with the internet up: it registers its key.';
      END IF;
      RETURN jsonb_build_object(
        'token', cv_auth.sign(jsonb_build_object(
          'sub', v_user, 'email', auth.jwt() ->> 'email', 'role', 'authenticated',
          'aud', 'centrovision-clinic', 'sign_in', 'online', 'sid', gen_random_uuid(),
          'iat', v_now, 'exp', v_exp), v_key.key_id, v_key.inner_pad, v_key.outer_pad),
        'expires_at', to_timestamp(v_exp));
    END
    $fn$;

    -- Users the clinic servers must stop accepting: banned now, or deleted.
    CREATE FUNCTION public.cv_disabled_users() RETURNS uuid[]
      LANGUAGE plpgsql STABLE SECURITY DEFINER
      SET search_path = ''
    AS $fn$
    BEGIN
      PERFORM cv_sync.require_node(NULL);
      RETURN (SELECT coalesce(array_agg(u.id ORDER BY u.id), '{}') FROM auth.users u
        WHERE u.deleted_at IS NOT NULL OR u.banned_until > now());
    END
    $fn$;

    REVOKE ALL ON FUNCTION public.cv_clinic_register_key(uuid, text), public.cv_clinic_session(uuid),
      public.cv_disabled_users() FROM PUBLIC;
    IF to_regrole('anon') IS NOT NULL THEN
      REVOKE ALL ON FUNCTION public.cv_clinic_register_key(uuid, text), public.cv_clinic_session(uuid),
        public.cv_disabled_users() FROM anon, authenticated;
    END IF;
    GRANT EXECUTE ON FUNCTION public.cv_clinic_session(uuid) TO authenticated;
    -- A clinic server's node credential (a signed-in user; cv_sync.require_node checks it inside)
    -- registers its key and copies the disabled users.
    GRANT EXECUTE ON FUNCTION public.cv_clinic_register_key(uuid, text), public.cv_disabled_users()
      TO authenticated;
    IF to_regrole('service_role') IS NOT NULL THEN
      REVOKE ALL ON FUNCTION public.cv_clinic_session(uuid) FROM service_role;
      GRANT EXECUTE ON FUNCTION public.cv_clinic_register_key(uuid, text), public.cv_disabled_users()
        TO service_role;
    END IF;
    RETURN;
  END IF;

  -- The clinic server.
  -- In a schema of its own that no API role may use: a PC reaches crypt() only through sign_in.
  CREATE SCHEMA IF NOT EXISTS cv_crypto;
  REVOKE ALL ON SCHEMA cv_crypto FROM PUBLIC;
  CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA cv_crypto;
  SELECT n.nspname INTO v_crypto
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pgcrypto';

  CREATE TABLE cv_auth.settings (
    singleton boolean PRIMARY KEY DEFAULT true CONSTRAINT settings_singleton CHECK (singleton),
    offline_days integer NOT NULL DEFAULT 7 CONSTRAINT settings_offline_days CHECK (offline_days BETWEEN 1 AND 30),
    lockout_attempts integer NOT NULL DEFAULT 5
      CONSTRAINT settings_lockout_attempts CHECK (lockout_attempts BETWEEN 1 AND 20),
    lockout_minutes integer NOT NULL DEFAULT 15
      CONSTRAINT settings_lockout_minutes CHECK (lockout_minutes BETWEEN 1 AND 1440),
    session_hours integer NOT NULL DEFAULT 12 CONSTRAINT settings_session_hours CHECK (session_hours BETWEEN 1 AND 24)
  );
  INSERT INTO cv_auth.settings DEFAULT VALUES;

  CREATE TABLE cv_auth.verifiers (
    user_id uuid PRIMARY KEY,
    email text NOT NULL CONSTRAINT verifiers_email_key UNIQUE,
    verifier text NOT NULL,
    enrolled_at timestamptz NOT NULL DEFAULT now()
  );
  REVOKE ALL ON TABLE cv_auth.settings, cv_auth.verifiers FROM PUBLIC;

  -- The user's attempts sequence, made by enroll (NULL before, unless p_create): its value is the
  -- number of failed attempts in a row or, once they reach lockout_attempts, the epoch second the
  -- lockout ends (any epoch is above 10⁹, any count below). For the owner's functions only.
  CREATE FUNCTION cv_auth.attempts_sequence(p_user uuid, p_create boolean) RETURNS regclass
    LANGUAGE plpgsql
    SET search_path = ''
  AS $fn$
  DECLARE
    v_name text := format('cv_auth.%I', 'sign_in_attempts_' || replace(p_user::text, '-', ''));
  BEGIN
    IF p_create AND to_regclass(v_name) IS NULL THEN
      EXECUTE format('CREATE SEQUENCE %s AS bigint MINVALUE 0 START 0', v_name);
    END IF;
    RETURN to_regclass(v_name);
  END
  $fn$;

  -- Which key a PC must ask the cloud to sign its clinic session with.
  CREATE FUNCTION cv_auth.key_id() RETURNS uuid
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = ''
    RETURN (SELECT k.key_id FROM cv_auth.signing_key k);

  EXECUTE format($ddl$
    CREATE FUNCTION cv_auth.enroll(p_password text) RETURNS void
      LANGUAGE plpgsql SECURITY DEFINER
      SET search_path = %1$I, pg_temp
    AS $fn$
    DECLARE
      v_claims jsonb := cv_auth.claims();
    BEGIN
      IF v_claims ->> 'sign_in' IS DISTINCT FROM 'online' OR coalesce(v_claims ->> 'email', '') = '' THEN
        RAISE EXCEPTION 'only a session signed in online can leave an offline sign-in here'
          USING ERRCODE = 'CV010';
      END IF;
      IF coalesce(length(p_password), 0) = 0 THEN
        RAISE EXCEPTION 'the password is empty' USING ERRCODE = 'CV005';
      END IF;
      INSERT INTO cv_auth.verifiers (user_id, email, verifier)
      VALUES ((v_claims ->> 'sub')::uuid, lower(v_claims ->> 'email'), crypt(p_password, gen_salt('bf', 10)))
      ON CONFLICT (user_id) DO UPDATE
        SET email = excluded.email, verifier = excluded.verifier, enrolled_at = now();
      -- The password was just proven online: a lockout here ends.
      PERFORM setval(cv_auth.attempts_sequence((v_claims ->> 'sub')::uuid, true), 0);
    END
    $fn$
  $ddl$, v_crypto);

  -- {ok: true, token, expires_at, user: {id, email}} or {ok: false, reason: wrong | locked |
  -- expired | disabled, retry_after_s?}. Answers instead of raising, so a failed attempt counts.
  EXECUTE format($ddl$
    CREATE FUNCTION cv_auth.sign_in(p_email text, p_password text) RETURNS jsonb
      LANGUAGE plpgsql VOLATILE SECURITY DEFINER
      SET search_path = %1$I, pg_temp
    AS $fn$
    DECLARE
      v_settings cv_auth.settings;
      v_found cv_auth.verifiers;
      v_attempts regclass;
      v_state bigint;
      v_key cv_auth.signing_key;
      v_now bigint := floor(extract(epoch FROM now()))::bigint;
      v_exp bigint;
    BEGIN
      SELECT * INTO v_settings FROM cv_auth.settings;
      SELECT * INTO v_found FROM cv_auth.verifiers v WHERE v.email = lower(btrim(p_email)) FOR UPDATE;
      IF NOT FOUND THEN
        -- The same work as a real check: the answer's timing does not tell who has a verifier.
        PERFORM crypt(coalesce(p_password, ''), gen_salt('bf', 10));
        RETURN jsonb_build_object('ok', false, 'reason', 'wrong');
      END IF;
      -- The row lock above orders concurrent attempts of one user; their count is the sequence's.
      -- Without one (made in a transaction that never committed) nothing would count: no check.
      v_attempts := cv_auth.attempts_sequence(v_found.user_id, false);
      IF v_attempts IS NULL THEN
        RETURN jsonb_build_object('ok', false, 'reason', 'expired');
      END IF;
      EXECUTE format('SELECT last_value FROM %%s', v_attempts) INTO v_state;
      IF v_state >= v_settings.lockout_attempts THEN
        -- A count at the limit without the lockout's end (an attempt cancelled after it was
        -- counted): the lockout starts now, so cutting attempts short never earns a fresh round.
        IF v_state < 1000000000 THEN
          v_state := v_now + v_settings.lockout_minutes * 60;
          PERFORM setval(v_attempts, v_state);
        END IF;
        IF v_state > extract(epoch FROM now()) THEN
          RETURN jsonb_build_object('ok', false, 'reason', 'locked',
            'retry_after_s', ceil(v_state - extract(epoch FROM now())));
        END IF;
        v_state := 0;
      END IF;
      -- Spent before the check, for good.
      PERFORM setval(v_attempts, v_state + 1);
      IF crypt(coalesce(p_password, ''), v_found.verifier) IS DISTINCT FROM v_found.verifier THEN
        IF v_state + 1 >= v_settings.lockout_attempts THEN
          PERFORM setval(v_attempts, v_now + v_settings.lockout_minutes * 60);
        END IF;
        RETURN jsonb_build_object('ok', false, 'reason', 'wrong');
      END IF;
      PERFORM setval(v_attempts, 0);
      IF EXISTS (SELECT FROM cv_auth.disabled_users d WHERE d.user_id = v_found.user_id) THEN
        RETURN jsonb_build_object('ok', false, 'reason', 'disabled');
      END IF;
      IF v_found.enrolled_at < now() - make_interval(days => v_settings.offline_days) THEN
        RETURN jsonb_build_object('ok', false, 'reason', 'expired');
      END IF;
      SELECT * INTO v_key FROM cv_auth.signing_key;
      v_exp := v_now + v_settings.session_hours * 3600;
      RETURN jsonb_build_object('ok', true,
        'token', cv_auth.sign(jsonb_build_object(
          'sub', v_found.user_id, 'email', v_found.email, 'role', 'authenticated',
          'aud', 'centrovision-clinic', 'sign_in', 'clinic', 'sid', gen_random_uuid(),
          'iat', v_now, 'exp', v_exp), v_key.key_id, v_key.inner_pad, v_key.outer_pad),
        'expires_at', to_timestamp(v_exp),
        'user', jsonb_build_object('id', v_found.user_id, 'email', v_found.email));
    END
    $fn$
  $ddl$, v_crypto);

  -- Ends this connection's clinic session here (it keeps working nowhere else: it is only good here).
  CREATE FUNCTION cv_auth.sign_out() RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = ''
  AS $fn$
  DECLARE
    v_claims jsonb := cv_auth.claims();
  BEGIN
    DELETE FROM cv_auth.ended_sessions e WHERE e.expires_at < now();
    IF v_claims IS NOT NULL THEN
      INSERT INTO cv_auth.ended_sessions (sid, expires_at)
      VALUES ((v_claims ->> 'sid')::uuid, to_timestamp((v_claims ->> 'exp')::double precision))
      ON CONFLICT (sid) DO NOTHING;
    END IF;
  END
  $fn$;

  -- For the daemon (its peer calls them like the cv_sync_* functions): the key to register with
  -- the cloud, and the cloud's current list of disabled users, which replaces the copy here.
  CREATE FUNCTION public.cv_clinic_key_export() RETURNS jsonb
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = ''
    RETURN (SELECT jsonb_build_object('key_id', k.key_id, 'key', encode(k.key, 'hex')) FROM cv_auth.signing_key k);

  CREATE FUNCTION public.cv_clinic_set_disabled_users(p_users jsonb) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = ''
  AS $fn$
  DECLARE
    v_users uuid[];
  BEGIN
    IF jsonb_typeof(p_users) IS DISTINCT FROM 'array' OR EXISTS (SELECT FROM jsonb_array_elements(p_users) e
        WHERE jsonb_typeof(e) <> 'string' OR e #>> '{}' !~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$') THEN
      RAISE EXCEPTION 'the disabled users are a JSON array of user ids (empty when none)' USING ERRCODE = 'CV005';
    END IF;
    SELECT coalesce(array_agg(DISTINCT (e #>> '{}')::uuid), '{}') INTO v_users FROM jsonb_array_elements(p_users) e;
    DELETE FROM cv_auth.disabled_users d WHERE d.user_id <> ALL (v_users);
    INSERT INTO cv_auth.disabled_users (user_id) SELECT unnest(v_users)
    ON CONFLICT (user_id) DO NOTHING;
    RETURN cardinality(v_users);
  END
  $fn$;

  REVOKE ALL ON FUNCTION cv_auth.attempts_sequence(uuid, boolean), cv_auth.key_id(), cv_auth.enroll(text),
    cv_auth.sign_in(text, text), cv_auth.sign_out(), public.cv_clinic_key_export(),
    public.cv_clinic_set_disabled_users(jsonb) FROM PUBLIC;
  GRANT USAGE ON SCHEMA cv_auth TO centrovision_app, centrovision_sync;
  GRANT EXECUTE ON FUNCTION cv_auth.key_id(), cv_auth.sign_in(text, text) TO centrovision_app, authenticated;
  GRANT EXECUTE ON FUNCTION cv_auth.enroll(text), cv_auth.sign_out() TO authenticated;
  GRANT EXECUTE ON FUNCTION cv_auth.key_id(), public.cv_clinic_key_export(), public.cv_clinic_set_disabled_users(jsonb)
    TO centrovision_sync;
END
$identity$;

-- What `centrovision-sync cloud migrate` records: the project counts as having sql/0011_identity.sql.
  create schema if not exists cv_meta;
  revoke all on schema cv_meta from public;
  do $cv_meta$
  declare
    v_role text;
  begin
    if to_regclass('public.cv_schema_migrations') is not null and to_regclass('cv_meta.schema_migrations') is null then
      alter table public.cv_schema_migrations set schema cv_meta;
      alter table cv_meta.cv_schema_migrations rename to schema_migrations;
      for v_role in select rolname from pg_roles where rolname in ('anon', 'authenticated', 'service_role') loop
        execute format('revoke all on cv_meta.schema_migrations from %I', v_role);
      end loop;
    end if;
  end
  $cv_meta$;
  create table if not exists cv_meta.schema_migrations (
    name text primary key,
    checksum text not null,
    applied_at timestamptz not null default now()
  );
insert into cv_meta.schema_migrations (name, checksum) values ('0011_identity.sql', 'ae2d6cf3fcbdd727540c5baf8140ceed224d91605fd847621388b3d79a9bc424') on conflict (name) do nothing;
