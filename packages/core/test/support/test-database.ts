import { randomUUID } from "node:crypto";
import { applyMigrations, runningPostgres, shapeSupabaseDatabase } from "@centrovision/testkit";
import postgres from "postgres";
import { inject } from "vitest";

/**
 * Dates and timestamps travel as text, both ways. By default postgres.js re-parses a string bound
 * to a date parameter with JavaScript's `Date`, which turns 2023-02-29 into 2023-03-01 instead of
 * letting PostgreSQL reject it; the tests must see what PostgreSQL itself does.
 */
const types = {
  dateText: {
    to: 1184,
    from: [1082, 1114, 1184],
    serialize: (value: unknown) => (value instanceof Date ? value.toISOString() : String(value)),
    parse: (value: string) => value,
  },
};

export interface TestDatabase {
  /** Superuser URL of the database. */
  readonly url: string;
  /** With `supabase`: the hosted project's `postgres` login (not a superuser) that migrated it. */
  readonly postgresUrl?: string;
  /** Superuser connection to it. */
  readonly sql: postgres.Sql;
  /** Closes the connection and drops the database. */
  drop(): Promise<void>;
}

export interface TestDatabaseOptions {
  /**
   * Give the database a hosted Supabase project's shape first (API roles, `auth`, a demoted
   * `postgres` login), and apply sql/ as that `postgres`, as on a real project.
   */
  supabase?: boolean;
  /** Apply sql/ (default true). */
  migrate?: boolean;
}

/**
 * A fresh database with sql/ applied, on the run's server (see global-setup.ts), so test files
 * never see each other's rows. Names start with `prefix` to make a leftover easy to trace.
 */
export async function createTestDatabase(
  prefix: string,
  options: TestDatabaseOptions = {},
): Promise<TestDatabase> {
  const serverUrl = inject("postgresUrl");
  if (!serverUrl) {
    throw new Error(
      "[core tests] no PostgreSQL: run through packages/core/vitest.config.ts, whose globalSetup starts it",
    );
  }
  const name = `${prefix}_${randomUUID().slice(0, 8)}`;
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`create database "${name}"`);
  } finally {
    await admin.end();
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  const sql = postgres(url.href, { max: 4, onnotice: () => {}, types });
  const postgresUrl = options.supabase
    ? (await shapeSupabaseDatabase(runningPostgres(serverUrl), name)).postgresUrl
    : undefined;
  if (options.migrate ?? true) await applyMigrations(postgresUrl ?? url.href);
  return {
    url: url.href,
    ...(postgresUrl !== undefined && { postgresUrl }),
    sql,
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

/** Runs `work` in a transaction that is always rolled back, so probes leave no rows behind. */
export async function rolledBack(sql: postgres.Sql, work: (tx: postgres.TransactionSql) => Promise<unknown>) {
  const rollback = new Error("rollback");
  try {
    await sql.begin(async (tx) => {
      await work(tx);
      throw rollback;
    });
  } catch (error) {
    if (error !== rollback) throw error;
  }
}
