import { postgresRun, SUPABASE_SUPERUSER } from "@centrovision/testkit";

declare module "vitest" {
  export interface ProvidedContext {
    /** Superuser URL of the `postgres` database on this run's PostgreSQL server (superuser supabase_admin). */
    postgresUrl: string;
  }
}

// One PostgreSQL 18 for the run. Its superuser is not `postgres`: Supabase-shaped test databases
// demote that role, as hosted projects do.
export default postgresRun({ superuser: SUPABASE_SUPERUSER });
