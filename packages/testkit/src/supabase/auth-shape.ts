/**
 * The part of Supabase Auth's schema (supabase/auth `migrations/`) the local Auth server uses:
 * `auth.users` with the columns the password grant, bans and the user object read,
 * `auth.sessions` and the (v1, opaque 12-character) `auth.refresh_tokens` with their parent
 * chain. Idempotent: a data directory made by an older local Supabase gains the columns on its
 * next start. The tables belong to `supabase_auth_admin`, the login Supabase Auth connects as.
 */
export const AUTH_SCHEMA_SQL = `
  -- Application schemas reference auth.users (foreign keys); it predates the Auth server here.
  create table if not exists auth.users (
    id uuid primary key,
    email text,
    raw_user_meta_data jsonb not null default '{}',
    created_at timestamptz not null default now()
  );
  alter table auth.users
    add column if not exists aud varchar(255),
    add column if not exists role varchar(255),
    add column if not exists encrypted_password varchar(255),
    add column if not exists email_confirmed_at timestamptz,
    add column if not exists phone text default null,
    add column if not exists phone_confirmed_at timestamptz,
    add column if not exists last_sign_in_at timestamptz,
    add column if not exists raw_app_meta_data jsonb,
    add column if not exists updated_at timestamptz,
    add column if not exists banned_until timestamptz,
    add column if not exists is_sso_user boolean not null default false,
    add column if not exists deleted_at timestamptz,
    add column if not exists is_anonymous boolean not null default false;
  alter table auth.users add column if not exists confirmed_at timestamptz
    generated always as (least(email_confirmed_at, phone_confirmed_at)) stored;
  create unique index if not exists users_email_partial_key on auth.users (email) where (is_sso_user = false);

  do $$
  begin
    if not exists (
      select from pg_type t join pg_namespace n on n.oid = t.typnamespace
      where n.nspname = 'auth' and t.typname = 'aal_level'
    ) then
      create type auth.aal_level as enum ('aal1', 'aal2', 'aal3');
    end if;
  end
  $$;

  create table if not exists auth.sessions (
    id uuid primary key,
    user_id uuid not null references auth.users (id) on delete cascade,
    created_at timestamptz,
    updated_at timestamptz,
    factor_id uuid,
    aal auth.aal_level,
    not_after timestamptz,
    refreshed_at timestamp without time zone
  );
  create index if not exists sessions_user_id_idx on auth.sessions (user_id);

  -- Deleting a session (sign-out) deletes its refresh tokens; parent is a token, not a key.
  create table if not exists auth.refresh_tokens (
    id bigserial primary key,
    token varchar(255) constraint refresh_tokens_token_unique unique,
    user_id varchar(255),
    revoked boolean,
    created_at timestamptz,
    updated_at timestamptz,
    parent varchar(255),
    session_id uuid references auth.sessions (id) on delete cascade
  );
  create index if not exists refresh_tokens_parent_idx on auth.refresh_tokens (parent);
  create index if not exists refresh_tokens_session_id_revoked_idx on auth.refresh_tokens (session_id, revoked);

  grant usage, create on schema auth to supabase_auth_admin;
  alter table auth.users owner to supabase_auth_admin;
  alter table auth.sessions owner to supabase_auth_admin;
  alter table auth.refresh_tokens owner to supabase_auth_admin;
  alter type auth.aal_level owner to supabase_auth_admin;`;
