import { createHash } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import type postgres from "postgres";
import { CvError } from "../errors.js";

/**
 * The one migration runner: the clinic daemon's `init`, the test kit and the demo all keep the
 * same bookkeeping (`cv_schema_migrations`, sha-256 of each file), so a database migrated by any
 * of them is current for all. A separate entry point (`@centrovision/core/migrations`) because it
 * reads files: the browser bundle that imports core's types never sees it.
 */

const MIGRATION_FILE = /^(\d{4})_[a-z0-9_]+\.sql$/;

export interface Migration {
  readonly name: string;
  readonly sql: string;
  readonly checksum: string;
}

const checksum = (sql: string) => createHash("sha256").update(sql).digest("hex");

/** Reads `dir`'s `NNNN_name.sql` files in numeric order, then each of `extraFiles` as given. */
export async function readMigrations(dir: string, extraFiles: readonly string[] = []): Promise<Migration[]> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((name) => MIGRATION_FILE.test(name)).sort();
  } catch (error) {
    throw new CvError(
      "invalid_config",
      `[core] cannot read migrations in ${dir} (${(error as NodeJS.ErrnoException).code}): point the migrations folder at the repository's sql/`,
      { cause: error },
    );
  }
  const files = [
    ...names.map((name) => ({ name, path: join(dir, name) })),
    ...extraFiles.map((path) => ({ name: path, path })),
  ];
  return Promise.all(
    files.map(async ({ name, path }) => {
      const sql = await readFile(path, "utf8");
      return { name, sql, checksum: checksum(sql) };
    }),
  );
}

function changed(name: string): CvError {
  return new CvError(
    "conflict",
    `[core] migration ${name} changed after it was applied to this database: the tree and the database have drifted; add a new numbered migration instead of editing an applied one`,
  );
}

/**
 * Applies the migrations `sql` has not had yet, in order, each in its own transaction under an
 * advisory lock (two runners at once are safe), and returns the names applied: [] when current.
 * A migration edited after it was applied is refused (`conflict`): guessing which side is right
 * could lose data.
 */
export async function runMigrations(sql: postgres.Sql, migrations: readonly Migration[]): Promise<string[]> {
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

/** Names of `migrations` not applied to `sql` yet (or changed since), without applying anything. */
export async function pendingMigrations(
  sql: postgres.Sql,
  migrations: readonly Migration[],
): Promise<string[]> {
  const [exists] = await sql<{ ok: boolean }[]>`
    select to_regclass('public.cv_schema_migrations') is not null as ok`;
  if (!exists?.ok) return migrations.map((m) => m.name);
  const rows = await sql<
    { name: string; checksum: string }[]
  >`select name, checksum from cv_schema_migrations`;
  const done = new Map(rows.map((row) => [row.name, row.checksum]));
  return migrations.filter((m) => done.get(m.name) !== m.checksum).map((m) => m.name);
}
