-- 0018 pgcrypto on both tiers, for the deflated batch of sql/functions/09_deflated.sql: a clinic
-- server's upload is compressed, and in a Supabase database the only decompressor is pgcrypto's
-- OpenPGP reader (zlib). Supabase has pgcrypto already (schema `extensions`), and 0011 created it
-- on the clinic server; anywhere else it goes into a schema of its own that no API role may use,
-- as 0011 does it.
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_extension e WHERE e.extname = 'pgcrypto') THEN
    CREATE SCHEMA IF NOT EXISTS cv_crypto;
    REVOKE ALL ON SCHEMA cv_crypto FROM PUBLIC;
    CREATE EXTENSION pgcrypto WITH SCHEMA cv_crypto;
  END IF;
END
$$;
