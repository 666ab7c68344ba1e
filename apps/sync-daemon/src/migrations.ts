import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { CvError } from "@centrovision/core";
import {
  type Migration,
  pendingMigrations as pending,
  readMigrations as readFrom,
  runMigrations,
} from "@centrovision/core/migrations";
import type postgres from "postgres";

/** Where the Debian package puts `sql/`: beside the bundle's folder (/usr/lib/centrovision-sync/{lib,sql}). */
const PACKAGED_MIGRATIONS_DIR = new URL("../sql/", import.meta.url);

/**
 * The `sql/` folder shipped with the daemon: the package's when this runs from the package, else
 * the repository's (three folders above src/ or dist/). core's runner keeps the bookkeeping
 * (`cv_meta.schema_migrations`, sha-256 of each file) the test kit and the demo use too, so a database
 * migrated by any of them is current for all.
 */
export const SHIPPED_MIGRATIONS_DIR = fileURLToPath(
  existsSync(PACKAGED_MIGRATIONS_DIR) ? PACKAGED_MIGRATIONS_DIR : new URL("../../../sql/", import.meta.url),
);

/**
 * Reads `dir`'s migrations (numbered, then the repeatable `functions/` files); no numbered one is
 * `invalid_config` (a wrong folder, not a current database), naming `setting`, where the folder was
 * chosen.
 */
export async function readMigrations(dir: string, setting = "[paths] migrations_dir"): Promise<Migration[]> {
  const migrations = await readFrom(dir);
  if (!migrations.some((migration) => !migration.repeatable)) {
    throw new CvError(
      "invalid_config",
      `[sync-daemon] no NNNN_name.sql migrations in ${dir}: set ${setting}`,
    );
  }
  return migrations;
}

/**
 * Applies pending migrations in order (a changed repeatable one again), each in its own transaction
 * under an advisory lock (two `init`s at once are safe), and returns the names applied: [] when the
 * database is current.
 */
export async function applyMigrations(
  sql: postgres.Sql,
  dir: string = SHIPPED_MIGRATIONS_DIR,
): Promise<string[]> {
  return runMigrations(sql, await readMigrations(dir));
}

/** Migrations in `dir` not yet applied (or changed since), without applying anything: for `doctor`. */
export async function pendingMigrations(
  sql: postgres.Sql,
  dir: string = SHIPPED_MIGRATIONS_DIR,
): Promise<string[]> {
  return pending(sql, await readMigrations(dir));
}
