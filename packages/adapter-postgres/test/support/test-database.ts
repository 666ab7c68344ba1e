import { randomUUID } from "node:crypto";
import { TABLE_NAMES, type TableName } from "@centrovision/core";
import type { ContractProbe } from "@centrovision/testkit/contract";
import postgres from "postgres";
import { inject } from "vitest";

export interface TestDatabase {
  /** Superuser URL of the database. */
  readonly url: string;
  readonly name: string;
  readonly port: number;
  /** Superuser connection to it, bypassing every adapter and link. */
  readonly sql: postgres.Sql;
  /** Reads rows as PostgreSQL stores them (`to_jsonb`), for the contract suite. */
  readonly probe: ContractProbe;
  /** Empties every EHR table. */
  truncate(): Promise<void>;
  /** Closes the connection and drops the database. */
  drop(): Promise<void>;
}

/**
 * A fresh copy of one of the run's migrated templates (see global-setup.ts), so files never share
 * rows. `collation` picks the database's default: C, or Spanish (Mexico) ICU.
 */
export async function createTestDatabase(
  prefix: string,
  collation: "c" | "esMx" = "c",
): Promise<TestDatabase> {
  const serverUrl = inject("postgresUrl");
  const name = `${prefix}_${randomUUID().slice(0, 8)}`;
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`create database "${name}" template "${inject("templates")[collation]}"`);
  } finally {
    await admin.end();
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  const sql = postgres(url.href, { max: 2, onnotice: () => {} });
  return {
    url: url.href,
    name,
    port: Number(url.port),
    sql,
    probe: {
      async row(table: TableName, id: string) {
        const [found] = await sql.unsafe(`select to_jsonb(t) as row from ${table} t where id = $1`, [id]);
        return found?.row ?? null;
      },
      async count(table: TableName) {
        const [found] = await sql.unsafe(`select count(*)::int as n from ${table}`);
        return found?.n as number;
      },
    },
    async truncate() {
      await sql.unsafe(`truncate ${TABLE_NAMES.join(", ")}`);
    },
    async drop() {
      await sql.end();
      const dropper = postgres(serverUrl, { max: 1, onnotice: () => {} });
      try {
        await dropper.unsafe(`drop database "${name}" with (force)`);
      } finally {
        await dropper.end();
      }
    },
  };
}
