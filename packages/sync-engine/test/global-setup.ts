import { SUPABASE_SUPERUSER, startPostgres } from "@centrovision/testkit";
import type { TestProject } from "vitest/node";

declare module "vitest" {
  export interface ProvidedContext {
    /** Superuser URL of the `postgres` database on this run's PostgreSQL server. */
    postgresUrl: string;
  }
}

/**
 * Starts one PostgreSQL for the whole run and hands its URL to the tests (`inject("postgresUrl")`).
 * Every test file creates the databases it needs on it (a "cloud" and a "clinic" node are two
 * databases of one server), so files never see each other's rows. Failing to start fails the run:
 * a test that needs a database never skips.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const server = await startPostgres({ superuser: SUPABASE_SUPERUSER });
  project.provide("postgresUrl", server.url);
  return () => server.stop();
}
