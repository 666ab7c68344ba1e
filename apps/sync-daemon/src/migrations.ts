import { createHash } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { CvError } from "@centrovision/core";
import type postgres from "postgres";

/**
 * The repository's `sql/` folder, shipped with the daemon. Same files, same bookkeeping
 * (`cv_schema_migrations`, sha-256 of the file) and same refusal of an edited migration as the
 * test runner in `@centrovision/testkit`, so a database migrated by either is current for both.
 */
export const SHIPPED_MIGRATIONS_DIR = fileURLToPath(new URL("../../../sql/", import.meta.url));

const MIGRATION_FILE = /^(\d{4})_[a-z0-9_]+\.sql$/;

interface Migration {
  readonly name: string;
  readonly sql: string;
  readonly checksum: string;
}

async function readMigrations(dir: string): Promise<Migration[]> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((name) => MIGRATION_FILE.test(name)).sort();
  } catch (error) {
    throw new CvError(
      "invalid_config",
      `[sync-daemon] cannot read migrations in ${dir} (${(error as NodeJS.ErrnoException).code}): set [paths] migrations_dir`,
      { cause: error },
    );
  }
  if (names.length === 0) {
    throw new CvError(
      "invalid_config",
      `[sync-daemon] no NNNN_name.sql migrations in ${dir}: set [paths] migrations_dir`,
    );
  }
  return Promise.all(
    names.map(async (name) => {
      const sql = await readFile(join(dir, name), "utf8");
      return { name, sql, checksum: createHash("sha256").update(sql).digest("hex") };
    }),
  );
}

function changed(name: string): CvError {
  return new CvError(
    "conflict",
    `[sync-daemon] migration ${name} changed after it was applied to this database: the daemon and the database disagree; install the daemon version that migrated it, or add a new numbered migration`,
  );
}

/**
 * Applies pending migrations in order, each in its own transaction under an advisory lock (two
 * `init`s at once are safe), and returns the names applied: [] when the database is current.
 */
export async function applyMigrations(
  sql: postgres.Sql,
  dir: string = SHIPPED_MIGRATIONS_DIR,
): Promise<string[]> {
  const migrations = await readMigrations(dir);
  await sql`
    create table if not exists cv_schema_migrations (
      name text primary key,
      checksum text not null,
      applied_at timestamptz not null default now()
    )`;
  const applied: string[] = [];
  for (const migration of migrations) {
    await sql.begin(async (tx) => {
      await tx`select pg_advisory_xact_lock(hashtext('cv_schema_migrations'))`;
      const [done] = await tx<{ checksum: string }[]>`
        select checksum from cv_schema_migrations where name = ${migration.name}`;
      if (done) {
        if (done.checksum !== migration.checksum) throw changed(migration.name);
        return;
      }
      await tx.unsafe(migration.sql);
      await tx`insert into cv_schema_migrations (name, checksum) values (${migration.name}, ${migration.checksum})`;
      applied.push(migration.name);
    });
  }
  return applied;
}

/** Migrations in `dir` not yet applied (or changed since), without applying anything: for `doctor`. */
export async function pendingMigrations(
  sql: postgres.Sql,
  dir: string = SHIPPED_MIGRATIONS_DIR,
): Promise<string[]> {
  const migrations = await readMigrations(dir);
  const [exists] = await sql<
    { ok: boolean }[]
  >`select to_regclass('public.cv_schema_migrations') is not null as ok`;
  if (!exists?.ok) return migrations.map((m) => m.name);
  const rows = await sql<
    { name: string; checksum: string }[]
  >`select name, checksum from cv_schema_migrations`;
  const done = new Map(rows.map((row) => [row.name, row.checksum]));
  return migrations.filter((m) => done.get(m.name) !== m.checksum).map((m) => m.name);
}
