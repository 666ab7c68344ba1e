import type { TestProject } from "vitest/node";
import { type PostgresServer, type StartPostgresOptions, startPostgres } from "./postgres.js";

/** What a package adds to the run's server: values for the tests (`inject`), and their teardown. */
export interface RunExtras {
  readonly provide?: Readonly<Record<string, unknown>>;
  readonly stop?: () => Promise<void>;
}

/**
 * A vitest `globalSetup` for a package whose tests need PostgreSQL: one real server for the whole
 * run, its superuser URL handed to the tests as `inject("postgresUrl")`, and whatever `prepare`
 * builds on it (templates, a local Supabase) under its own keys. Failing to start fails the run:
 * a test that needs a database never skips. Each package declares its keys on vitest's
 * `ProvidedContext`.
 */
export function postgresRun(
  options: StartPostgresOptions = {},
  prepare?: (server: PostgresServer) => Promise<RunExtras>,
): (project: TestProject) => Promise<() => Promise<void>> {
  return async (project) => {
    const server = await startPostgres(options);
    let extras: RunExtras = {};
    try {
      extras = (await prepare?.(server)) ?? {};
    } catch (error) {
      await server.stop();
      throw error;
    }
    project.provide("postgresUrl" as never, server.url as never);
    for (const [key, value] of Object.entries(extras.provide ?? {}))
      project.provide(key as never, value as never);
    return async () => {
      await extras.stop?.();
      await server.stop();
    };
  };
}
