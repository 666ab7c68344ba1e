import { postgresRun, SUPABASE_SUPERUSER, startLocalSupabase } from "@centrovision/testkit";

declare module "vitest" {
  export interface ProvidedContext {
    /** Superuser URL of the `postgres` database on this run's PostgreSQL server (clinic databases). */
    postgresUrl: string;
    /** The run's local Supabase: the cloud every test's clinic syncs with. */
    cloud: { url: string; anonKey: string; serviceRoleKey: string; dbUrl: string };
  }
}

/**
 * One PostgreSQL for the run: each test makes its own clinic database on it. One local Supabase
 * (the cloud) on the same server, shared as a real cloud is shared by clinics: every clinic is a
 * node of its own with its own cursors, and tests use rows of their own.
 */
export default postgresRun({ superuser: SUPABASE_SUPERUSER }, async (server) => {
  const cloud = await startLocalSupabase({ postgres: server, log: () => {} });
  const { url, anonKey, serviceRoleKey, dbUrl } = cloud;
  return { provide: { cloud: { url, anonKey, serviceRoleKey, dbUrl } }, stop: () => cloud.stop() };
});
