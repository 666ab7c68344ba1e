import { createHash } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import postgres from "postgres";

/** The repository's `sql/` folder: one source of migrations for cloud, clinic server and tests. */
export const MIGRATIONS_DIR = fileURLToPath(new URL("../../../sql/", import.meta.url));

const MIGRATION_FILE = /^(\d{4})_[a-z0-9_]+\.sql$/;

export interface Migration {
  readonly name: string;
  readonly sql: string;
  readonly checksum: string;
}

/** Reads `NNNN_name.sql` files in numeric order. */
export async function readMigrations(dir: string = MIGRATIONS_DIR): Promise<Migration[]> {
  const names = (await readdir(dir)).filter((name) => MIGRATION_FILE.test(name)).sort();
  return Promise.all(
    names.map(async (name) => {
      const sql = await readFile(join(dir, name), "utf8");
      return { name, sql, checksum: createHash("sha256").update(sql).digest("hex") };
    }),
  );
}

export interface ApplyMigrationsOptions {
  dir?: string;
  /** Extra SQL files applied after `dir`, in the order given (recorded by file name). */
  extraFiles?: readonly string[];
}

/**
 * Applies pending migrations, each in its own transaction, and records them in
 * `cv_schema_migrations`. Safe to run concurrently (advisory lock) and twice.
 * A migration edited after it was applied is refused: the database and the
 * tree have drifted, and guessing which one is right could lose data.
 * Returns the names applied by this call.
 */
export async function applyMigrations(url: string, options: ApplyMigrationsOptions = {}): Promise<string[]> {
  const migrations = await readMigrations(options.dir);
  for (const file of options.extraFiles ?? []) {
    const sql = await readFile(file, "utf8");
    migrations.push({ name: file, sql, checksum: createHash("sha256").update(sql).digest("hex") });
  }
  const db = postgres(url, { max: 1, onnotice: () => {} });
  const applied: string[] = [];
  try {
    await db`
      create table if not exists cv_schema_migrations (
        name text primary key,
        checksum text not null,
        applied_at timestamptz not null default now()
      )`;
    for (const migration of migrations) {
      await db.begin(async (tx) => {
        await tx`select pg_advisory_xact_lock(hashtext('cv_schema_migrations'))`;
        const [done] = await tx<{ checksum: string }[]>`
          select checksum from cv_schema_migrations where name = ${migration.name}`;
        if (done) {
          if (done.checksum !== migration.checksum) {
            throw new Error(
              `[testkit] migration ${migration.name} changed after it was applied to this database; ` +
                "add a new numbered migration instead of editing an applied one",
            );
          }
          return;
        }
        await tx.unsafe(migration.sql);
        await tx`insert into cv_schema_migrations (name, checksum) values (${migration.name}, ${migration.checksum})`;
        applied.push(migration.name);
      });
    }
  } finally {
    await db.end();
  }
  return applied;
}
