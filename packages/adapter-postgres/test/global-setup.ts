import { applyMigrations, postgresRun } from "@centrovision/testkit";
import postgres from "postgres";

declare module "vitest" {
  export interface ProvidedContext {
    /** Superuser URL of the `postgres` database on this run's PostgreSQL server. */
    postgresUrl: string;
    /** Migrated databases to copy with `CREATE DATABASE … TEMPLATE`, by default collation. */
    templates: { readonly c: string; readonly esMx: string };
  }
}

const TEMPLATES = { c: "cv_adapter_template", esMx: "cv_adapter_template_es_mx" } as const;

/**
 * One PostgreSQL for the run, with two template databases migrated once; test files copy them,
 * which is much cheaper than migrating each. The cluster is `--no-locale` (C); the second
 * template has a Spanish (Mexico) ICU default collation, as a clinic's server may, so the contract
 * is also proved where text does not sort by code point by default.
 */
export default postgresRun({}, async (server) => {
  const admin = postgres(server.url, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`create database ${TEMPLATES.c}`);
    await admin.unsafe(
      `create database ${TEMPLATES.esMx} template template0 locale_provider icu icu_locale 'es-MX' locale 'C'`,
    );
  } finally {
    await admin.end();
  }
  // applyMigrations closes its connection: a database being copied must have no sessions.
  for (const name of Object.values(TEMPLATES)) await applyMigrations(server.urlFor(name));
  return { provide: { templates: TEMPLATES } };
});
