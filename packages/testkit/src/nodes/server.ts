import postgres from "postgres";
import { inject } from "vitest";
import { type PostgresServer, runningPostgres } from "../index.js";

declare module "vitest" {
  export interface ProvidedContext {
    /** Superuser URL of the `postgres` database on the run's PostgreSQL server (`postgresRun`). */
    postgresUrl: string;
  }
}

export function serverUrl(): string {
  const url = inject("postgresUrl");
  if (!url)
    throw new Error(
      "[testkit] no PostgreSQL for this run: give the package a vitest globalSetup made with postgresRun()",
    );
  return url;
}

export async function onServer(statement: string): Promise<void> {
  const admin = postgres(serverUrl(), { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(statement);
  } finally {
    await admin.end();
  }
}

/** The run's server as a PostgresServer, so startLocalSupabase puts its database on it. */
export function sharedPostgres(): PostgresServer {
  return runningPostgres(serverUrl());
}

const LOGIN = { user: "cv_sync_engine_test", password: "sync-engine-test-password" };

/**
 * A login in centrovision_sync, as the clinic daemon would use: proves the engine needs no more
 * than the sync role's grants. Roles are cluster-wide; test files race to create it.
 */
export async function syncLogin(): Promise<typeof LOGIN> {
  return ensureLogin(LOGIN, "centrovision_sync");
}

/** Creates `login` in `role` unless it exists (roles are cluster-wide; test files race to create them). */
export async function ensureLogin<L extends { user: string; password: string }>(
  login: L,
  role: string,
): Promise<L> {
  await onServer(`
    do $$ begin
      create role ${login.user} login password '${login.password}' in role ${role};
    exception when duplicate_object or unique_violation then null;
    end $$`);
  return login;
}

/** `url` with `login` as its user. */
export function withLogin(url: string, login: { user: string; password: string }): string {
  const parsed = new URL(url);
  parsed.username = login.user;
  parsed.password = login.password;
  return parsed.href;
}
