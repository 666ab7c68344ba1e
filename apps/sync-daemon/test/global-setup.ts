import { SUPABASE_SUPERUSER, startLocalSupabase, startPostgres } from "@centrovision/testkit";
import type { TestProject } from "vitest/node";

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
 * node of its own with its own cursors, and tests use rows of their own. Failing to start fails
 * the run: a test that needs a database never skips.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const server = await startPostgres({ superuser: SUPABASE_SUPERUSER });
  const cloud = await startLocalSupabase({ postgres: server, log: () => {} });
  project.provide("postgresUrl", server.url);
  project.provide("cloud", {
    url: cloud.url,
    anonKey: cloud.anonKey,
    serviceRoleKey: cloud.serviceRoleKey,
    dbUrl: cloud.dbUrl,
  });
  return async () => {
    await cloud.stop();
    await server.stop();
  };
}
