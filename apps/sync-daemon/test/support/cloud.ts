import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type LocalSupabase, runningPostgres, startLocalSupabase } from "@centrovision/testkit";
import postgres from "postgres";
import { afterEach, inject } from "vitest";
import { CLOUD_DB_URL_ENV } from "../../src/cloud-migrate.js";
import { type CliResult, runCli } from "./cli.js";

/** A hosted-shape Supabase project with nothing of ours installed, on the run's server. */
export interface EmptyProject {
  readonly stack: LocalSupabase;
  /** The project's `postgres` login (not a superuser): what `cloud migrate` is given. */
  readonly url: string;
  /** Its password, which no output may contain. */
  readonly password: string;
  /** Superuser connection to the project's database (bypasses the command under test). */
  readonly sql: postgres.Sql;
}

/**
 * A factory of empty projects for the calling test file: each is stopped (its database dropped)
 * after the test that started it.
 */
export function useEmptyProjects(): () => Promise<EmptyProject> {
  const opened: (() => Promise<void>)[] = [];
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((close) => close()));
  });
  return async () => {
    const migrationsDir = mkdtempSync(join(tmpdir(), "cv-no-migrations-"));
    const stack = await startLocalSupabase({
      postgres: runningPostgres(inject("postgresUrl")),
      migrationsDir,
      log: () => {},
    });
    const sql = postgres(stack.dbUrl, { max: 1, onnotice: () => {} });
    opened.push(async () => {
      await sql.end();
      await stack.stop();
      rmSync(migrationsDir, { recursive: true, force: true });
    });
    const url = stack.postgresUrl;
    return { stack, url, password: decodeURIComponent(new URL(url).password), sql };
  };
}

/** `centrovision-sync cloud migrate …` with the connection string in the environment (or none: ""). */
export function cloudMigrate(url: string, ...args: string[]): Promise<CliResult> {
  return runCli(["cloud", "migrate", ...args], { [CLOUD_DB_URL_ENV]: url });
}
