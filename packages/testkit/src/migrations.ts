import { fileURLToPath } from "node:url";
import { type Migration, readMigrations as readFrom, runMigrations } from "@centrovision/core/migrations";
import postgres from "postgres";

export type { Migration };

/** The repository's `sql/` folder: one source of migrations for cloud, clinic server and tests. */
export const MIGRATIONS_DIR = fileURLToPath(new URL("../../../sql/", import.meta.url));

/** Reads `NNNN_name.sql` files in numeric order, then the repeatable `functions/NN_name.sql` ones. */
export function readMigrations(dir: string = MIGRATIONS_DIR): Promise<Migration[]> {
  return readFrom(dir);
}

export interface ApplyMigrationsOptions {
  dir?: string;
  /**
   * Extra SQL files applied once each after `dir`'s numbered migrations, in the order given
   * (recorded by file name), before its repeatable ones.
   */
  extraFiles?: readonly string[];
}

/**
 * Applies pending migrations to the database at `url` with core's runner (each in its own
 * transaction, advisory-locked, recorded in `cv_meta.schema_migrations`; a changed repeatable one
 * again, an edited applied numbered one refused). Returns the names applied by this call.
 */
export async function applyMigrations(url: string, options: ApplyMigrationsOptions = {}): Promise<string[]> {
  const migrations = await readFrom(options.dir ?? MIGRATIONS_DIR, options.extraFiles);
  const db = postgres(url, { max: 1, onnotice: () => {} });
  try {
    return await runMigrations(db, migrations);
  } finally {
    await db.end();
  }
}
