import type postgres from "postgres";

/**
 * Gives an empty database the parts of Supabase that sql/0004_supabase_rls.sql looks for: schema
 * `auth` with `auth.uid()` (read from the request's JWT claims, as PostgREST sets them) and the
 * roles anon, authenticated and service_role (BYPASSRLS, as in Supabase). Roles are cluster-wide:
 * creating one that a concurrent test file already created is not an error.
 */
export async function makeSupabaseShaped(sql: postgres.Sql): Promise<void> {
  await sql.unsafe(`
    do $$
    declare
      role_name text;
    begin
      foreach role_name in array array['anon', 'authenticated', 'service_role'] loop
        begin
          execute format('create role %I nologin', role_name);
        exception when duplicate_object or unique_violation then
          null;
        end;
      end loop;
    end
    $$;
    alter role service_role bypassrls;
    create schema auth;
    create function auth.uid() returns uuid language sql stable
      as $$ select nullif(current_setting('request.jwt.claim.sub', true), '')::uuid $$;
    grant usage on schema public, auth to anon, authenticated, service_role;
  `);
}
