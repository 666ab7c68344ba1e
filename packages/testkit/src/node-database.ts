import postgres from "postgres";
import { applyMigrations } from "./migrations.js";
import type { PostgresServer } from "./postgres.js";

/**
 * A database on `server` with sql/ applied, named as sync node `name` (cv_sync_init), holding one
 * branch (`branchId`): a clinic server or a cloud for benchmarks, which run outside vitest.
 */
export async function createNodeDatabase(
  server: PostgresServer,
  name: string,
  branchId: string,
): Promise<{ url: string; sql: postgres.Sql }> {
  const url = await server.createDatabase(name);
  await applyMigrations(url);
  const sql = postgres(url, { max: 4, onnotice: () => {} });
  await sql`select cv_sync_init(${name})`;
  await sql`insert into branches (id, code, name, address) values (${branchId}, 'BENCH-NODE', 'Bench', 'Av. Reforma 1')`;
  return { url, sql };
}
