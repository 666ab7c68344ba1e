import { SUPABASE_SUPERUSER, startPostgres } from "@centrovision/testkit";
import type { TestProject } from "vitest/node";

declare module "vitest" {
  export interface ProvidedContext {
    /** Superuser URL of the `postgres` database on this run's PostgreSQL server (superuser supabase_admin). */
    postgresUrl: string;
  }
}

/**
 * Starts one PostgreSQL 18 for the whole run and hands its URL to the tests (`inject`).
 * Failing to start fails the run: a test that needs a database never skips.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  // Its superuser is not `postgres`: Supabase-shaped test databases demote that role, as hosted projects do.
  const server = await startPostgres({ superuser: SUPABASE_SUPERUSER });
  project.provide("postgresUrl", server.url);
  return () => server.stop();
}
