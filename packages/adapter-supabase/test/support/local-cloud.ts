import { TABLE_NAMES, type TableName } from "@centrovision/core";
import { type LocalSupabase, startLocalSupabase } from "@centrovision/testkit";
import type { ContractProbe } from "@centrovision/testkit/contract";
import postgres from "postgres";

/** A local Supabase (real PostgreSQL + PostgREST-compatible gateway) and a superuser line into its database. */
export interface LocalCloud {
  readonly stack: LocalSupabase;
  /** Superuser connection to the database behind the gateway, bypassing it and RLS. */
  readonly sql: postgres.Sql;
  /** Reads rows as PostgreSQL stores them (`to_jsonb`), for the contract suite. */
  readonly probe: ContractProbe;
  /** Empties every EHR table: one truncate is far cheaper than a stack per test. */
  truncate(): Promise<void>;
  stop(): Promise<void>;
}

/** One stack per test file; readiness is the gateway answering, which startLocalSupabase awaits. */
export async function startLocalCloud(): Promise<LocalCloud> {
  // The repository's sql/ migrations, as the cloud has them.
  const stack = await startLocalSupabase({ log: () => {} });
  const sql = postgres(stack.dbUrl, { max: 2, onnotice: () => {} });
  return {
    stack,
    sql,
    probe: {
      async row(table: TableName, id: string) {
        const [found] = await sql.unsafe(`select to_jsonb(t) as row from public.${table} t where id = $1`, [
          id,
        ]);
        return found?.row ?? null;
      },
      async count(table: TableName) {
        const [found] = await sql.unsafe(`select count(*)::int as n from public.${table}`);
        return found?.n as number;
      },
    },
    async truncate() {
      await sql.unsafe(`truncate ${TABLE_NAMES.map((table) => `public.${table}`).join(", ")}`);
    },
    async stop() {
      await sql.end();
      await stack.stop();
    },
  };
}
