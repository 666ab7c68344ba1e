import { postgresRun, SUPABASE_SUPERUSER } from "@centrovision/testkit";

declare module "vitest" {
  export interface ProvidedContext {
    /** Superuser URL of the `postgres` database on this run's PostgreSQL server. */
    postgresUrl: string;
  }
}

// One PostgreSQL for the run. Every test file creates the databases it needs on it (a "cloud" and
// a "clinic" node are two databases of one server), so files never see each other's rows.
export default postgresRun({ superuser: SUPABASE_SUPERUSER });
