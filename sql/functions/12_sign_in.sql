-- cv_auth.sign_in (0011): an offline sign-in at the clinic server. Only there: the cloud has none
-- (0011 creates it where 0003 made a clinic signing key; this file replaces it under the same test).
--
-- An e-mail with no verifier here answers exactly as an enrolled one whose password is wrong: its
-- failures are counted too, in the bucket of 0020 its keyed hash picks, so it answers 'locked',
-- with the same retry_after_s, after `lockout_attempts` of them, and cannot be told from an
-- enrolled e-mail by the answers. Before, it answered 'wrong' forever: any PC login could list who
-- has a verifier here. Both take the same steps and costs: the bucket's row lock (concurrent
-- attempts wait for each other alike), the count read and written, one bcrypt (none for 'locked',
-- alike). An enrolled person keeps their own sequence (0011): an unknown e-mail that happens to share
-- their bucket never locks them out, nor frees them.
--
-- A verifier whose sequence is missing (made in a transaction that never committed) is counted in
-- its bucket as an unknown e-mail, and its password is not checked: 0011 answered 'expired' at
-- once, which told enrolled e-mails apart, and checking the password against a count other
-- e-mails can reset would give a guesser as many tries as they like. An online sign-in
-- (cv_auth.enroll) makes the sequence again.
--
-- What remains: a bucket holds one e-mail's count, so a guesser who brings an e-mail one short of
-- the lockout, then tries a few hundred others (one of them likely in its bucket, at bcrypt's
-- pace), sees an unknown e-mail start again where an enrolled one locks. Bounded storage cannot
-- keep a count for every e-mail anyone makes up; the catalog does not grow with them.
DO $sign_in$
DECLARE
  v_crypto name := (SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
    WHERE e.extname = 'pgcrypto');
BEGIN
  IF to_regclass('cv_auth.signing_key') IS NULL THEN
    RETURN;
  END IF;

  -- {ok: true, token, expires_at, user: {id, email}} or {ok: false, reason: wrong | locked |
  -- expired | disabled, retry_after_s?}. Answers instead of raising, so a failed attempt counts.
  -- A count is the sequence's value: failures in a row or, once they reach lockout_attempts, the
  -- epoch second the lockout ends (any epoch is above 10^9, any count below); in a bucket, plus the
  -- e-mail's tag times 2^33 (a person's sequence has tag 0).
  EXECUTE format($ddl$
    CREATE OR REPLACE FUNCTION cv_auth.sign_in(p_email text, p_password text) RETURNS jsonb
      LANGUAGE plpgsql VOLATILE SECURITY DEFINER
      SET search_path = %1$I, pg_temp
    AS $fn$
    DECLARE
      v_email text := lower(btrim(p_email));
      v_settings cv_auth.settings;
      v_key cv_auth.signing_key;
      v_hash bytea;
      v_found cv_auth.verifiers;
      v_attempts regclass;
      v_tag bigint := 0;
      v_state bigint;
      v_now bigint := floor(extract(epoch FROM now()))::bigint;
      v_exp bigint;
    BEGIN
      SELECT * INTO v_settings FROM cv_auth.settings;
      SELECT * INTO v_key FROM cv_auth.signing_key;
      -- HMAC-SHA-256 under the clinic's key (as cv_auth.sign, with a prefix no token starts with).
      v_hash := sha256(v_key.outer_pad || sha256(v_key.inner_pad
        || convert_to('cv_auth.sign_in bucket ' || coalesce(v_email, ''), 'UTF8')));
      -- Orders concurrent attempts of an unknown e-mail; taken for every e-mail, so that waiting
      -- on another attempt of the same bucket does not tell an unknown e-mail either.
      PERFORM FROM cv_auth.sign_in_buckets b WHERE b.bucket = get_byte(v_hash, 0) FOR UPDATE;
      -- The row lock orders concurrent attempts of one user; their count is the sequence's.
      SELECT * INTO v_found FROM cv_auth.verifiers v WHERE v.email = v_email FOR UPDATE;
      IF FOUND THEN
        v_attempts := cv_auth.attempts_sequence(v_found.user_id, false);
      END IF;
      IF v_attempts IS NULL THEN
        v_found := NULL;
        v_attempts := to_regclass('cv_auth.sign_in_bucket_' || get_byte(v_hash, 0));
        v_tag := (get_byte(v_hash, 1) & 63) * 16777216 + get_byte(v_hash, 2) * 65536
          + get_byte(v_hash, 3) * 256 + get_byte(v_hash, 4);
      END IF;
      v_state := coalesce(pg_sequence_last_value(v_attempts), 0);
      -- Another e-mail's count (or none yet): this one starts from zero, and takes the bucket over.
      v_state := CASE WHEN v_state / 8589934592 = v_tag THEN mod(v_state, 8589934592) ELSE 0 END;
      IF v_state >= v_settings.lockout_attempts THEN
        -- A count at the limit without the lockout's end (an attempt cancelled after it was
        -- counted): the lockout starts now, so cutting attempts short never earns a fresh round.
        IF v_state < 1000000000 THEN
          v_state := v_now + v_settings.lockout_minutes * 60;
          PERFORM setval(v_attempts, v_tag * 8589934592 + v_state);
        END IF;
        IF v_state > extract(epoch FROM now()) THEN
          RETURN jsonb_build_object('ok', false, 'reason', 'locked',
            'retry_after_s', ceil(v_state - extract(epoch FROM now())));
        END IF;
        v_state := 0;
      END IF;
      -- Spent before the check, for good.
      PERFORM setval(v_attempts, v_tag * 8589934592 + v_state + 1);
      -- Without a verifier, a fresh salt: the same bcrypt, and a salt never equals its hash.
      v_found.verifier := coalesce(v_found.verifier, gen_salt('bf', 10));
      IF crypt(coalesce(p_password, ''), v_found.verifier) IS DISTINCT FROM v_found.verifier THEN
        IF v_state + 1 >= v_settings.lockout_attempts THEN
          PERFORM setval(v_attempts, v_tag * 8589934592 + v_now + v_settings.lockout_minutes * 60);
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

  -- As 0011 granted it (CREATE OR REPLACE keeps them; stated for a database where this file made it).
  -- No cv_sync.grant_rpc(): it sees to cv_sync and public.cv_sync_* functions only.
  REVOKE ALL ON FUNCTION cv_auth.sign_in(text, text) FROM PUBLIC;
  GRANT EXECUTE ON FUNCTION cv_auth.sign_in(text, text) TO centrovision_app, authenticated;
END
$sign_in$;
