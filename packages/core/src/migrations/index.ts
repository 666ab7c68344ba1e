import { createHash } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import type postgres from "postgres";
import { CvError } from "../errors.js";

/**
 * The one migration runner: the clinic daemon's `init`, `cloud migrate`, the test kit and the
 * demo all keep the same bookkeeping (`cv_meta.schema_migrations`, sha-256 of each file), so a
 * database migrated by any of them is current for all. A separate entry point
 * (`@centrovision/core/migrations`) because it reads files: the browser bundle that imports
 * core's types never sees it.
 */

const MIGRATION_FILE = /^(\d{4})_[a-z0-9_]+\.sql$/;
const REPEATABLE_FILE = /^(\d{2})_[a-z0-9_]+\.sql$/;

/**
 * The subfolder of repeatable migrations (`NN_name.sql`: the current definitions of functions,
 * `CREATE OR REPLACE`), and the prefix of their names in the bookkeeping.
 */
export const REPEATABLE_DIR = "functions";

export interface Migration {
  /** `NNNN_name.sql`; a repeatable one `functions/NN_name.sql`; an extra file its path. */
  readonly name: string;
  readonly sql: string;
  /**
   * sha-256 of the file; of a repeatable one, of the file and the names of the migrations applied
   * once before it, so that adding a numbered migration applies every repeatable one again.
   */
  readonly checksum: string;
  /** Applied again whenever its checksum changes, instead of once and never edited. */
  readonly repeatable: boolean;
}

const sha256 = (...parts: string[]) => createHash("sha256").update(parts.join("\0")).digest("hex");

async function sqlFiles(dir: string, pattern: RegExp, optional: boolean): Promise<string[]> {
  try {
    return (await readdir(dir)).filter((name) => pattern.test(name)).sort();
  } catch (error) {
    const { code } = error as NodeJS.ErrnoException;
    if (optional && code === "ENOENT") return [];
    throw new CvError(
      "invalid_config",
      `[core] cannot read migrations in ${dir} (${code}): point the migrations folder at the repository's sql/`,
      { cause: error },
    );
  }
}

/**
 * Reads `dir`'s `NNNN_name.sql` files in numeric order, then each of `extraFiles` as given (all
 * applied once), then the repeatable `functions/NN_name.sql` files in name order (none without
 * that folder).
 */
export async function readMigrations(dir: string, extraFiles: readonly string[] = []): Promise<Migration[]> {
  const numbered = await sqlFiles(dir, MIGRATION_FILE, false);
  const repeatable = await sqlFiles(join(dir, REPEATABLE_DIR), REPEATABLE_FILE, true);
  const once = await Promise.all(
    [
      ...numbered.map((name) => ({ name, path: join(dir, name) })),
      ...extraFiles.map((path) => ({ name: path, path })),
    ].map(async ({ name, path }) => {
      const sql = await readFile(path, "utf8");
      return { name, sql, checksum: sha256(sql), repeatable: false };
    }),
  );
  // A numbered migration may replace or drop a function a repeatable file defines (a signature
  // can change only that way): each new one must be followed by the repeatable files again, or
  // its body would stay on the databases it reaches while fresh ones get the repeatable's.
  const before = once.map((migration) => `${migration.name}\n`).join("");
  const repeated = await Promise.all(
    repeatable.map(async (file) => {
      const sql = await readFile(join(dir, REPEATABLE_DIR, file), "utf8");
      return { name: `${REPEATABLE_DIR}/${file}`, sql, checksum: sha256(before, sql), repeatable: true };
    }),
  );
  return [...once, ...repeated];
}

/** Where applied migrations are recorded: outside `public`, which Supabase's API exposes. */
export const MIGRATIONS_TABLE = "cv_meta.schema_migrations";

/**
 * Creates the bookkeeping table when missing, moving one kept in `public` by an earlier version
 * (`public.cv_schema_migrations`, readable and writable with the anon key through Supabase's
 * REST API) with its records. Idempotent; run under the runner's advisory lock.
 */
export const BOOKKEEPING_SQL = `
  create schema if not exists cv_meta;
  revoke all on schema cv_meta from public;
  do $cv_meta$
  declare
    v_role text;
  begin
    if to_regclass('public.cv_schema_migrations') is not null and to_regclass('cv_meta.schema_migrations') is null then
      alter table public.cv_schema_migrations set schema cv_meta;
      alter table cv_meta.cv_schema_migrations rename to schema_migrations;
      for v_role in select rolname from pg_roles where rolname in ('anon', 'authenticated', 'service_role') loop
        execute format('revoke all on cv_meta.schema_migrations from %I', v_role);
      end loop;
    end if;
  end
  $cv_meta$;
  create table if not exists cv_meta.schema_migrations (
    name text primary key,
    checksum text not null,
    applied_at timestamptz not null default now()
  );`;

/**
 * The statement that records `migration` as applied (literals quoted: also pasted into files); a
 * repeatable one's record takes the new checksum, and `applied_at` moves when it changed.
 */
export function recordMigrationSql(migration: Migration): string {
  const quote = (text: string) => `'${text.replaceAll("'", "''")}'`;
  const insert = `insert into ${MIGRATIONS_TABLE} (name, checksum) values (${quote(migration.name)}, ${quote(migration.checksum)})`;
  return migration.repeatable
    ? `${insert} on conflict (name) do update set checksum = excluded.checksum, applied_at = now() where ${MIGRATIONS_TABLE}.checksum <> excluded.checksum;`
    : `${insert} on conflict (name) do nothing;`;
}

function changed(name: string): CvError {
  return new CvError(
    "conflict",
    `[core] migration ${name} changed after it was applied to this database: the tree and the database have drifted; add a new numbered migration instead of editing an applied one (a function's current definition is edited in ${REPEATABLE_DIR}/)`,
  );
}

/**
 * Applies the migrations `sql` has not had yet, in order, each in its own transaction under an
 * advisory lock (two runners at once are safe), and returns the names applied: [] when current.
 * A repeatable migration is applied again whenever its checksum differs from the recorded one. A
 * numbered migration edited after it was applied is refused (`conflict`): guessing which side is
 * right could lose data.
 */
export async function runMigrations(sql: postgres.Sql, migrations: readonly Migration[]): Promise<string[]> {
  const lock = (tx: postgres.TransactionSql) =>
    tx`select pg_advisory_xact_lock(hashtext('cv_schema_migrations'))`;
  await sql.begin(async (tx) => {
    await lock(tx);
    await tx.unsafe(BOOKKEEPING_SQL);
  });
  const applied: string[] = [];
  for (const migration of migrations) {
    await sql.begin(async (tx) => {
      await lock(tx);
      const [done] = await tx<{ checksum: string }[]>`
        select checksum from cv_meta.schema_migrations where name = ${migration.name}`;
      if (done?.checksum === migration.checksum) return;
      if (done && !migration.repeatable) throw changed(migration.name);
      await tx.unsafe(migration.sql);
      await tx.unsafe(recordMigrationSql(migration));
      applied.push(migration.name);
    });
  }
  return applied;
}

/**
 * Names of `migrations` not applied to `sql` yet, or changed since (a repeatable one: to be
 * applied again), without applying anything.
 */
export async function pendingMigrations(
  sql: postgres.Sql,
  migrations: readonly Migration[],
): Promise<string[]> {
  // An earlier version kept the records in public.cv_schema_migrations; the next run moves them.
  const [found] = await sql<{ table: string | null }[]>`
    select coalesce(to_regclass('cv_meta.schema_migrations'), to_regclass('public.cv_schema_migrations'))::text as table`;
  if (!found?.table) return migrations.map((m) => m.name);
  const rows = await sql.unsafe<{ name: string; checksum: string }[]>(
    `select name, checksum from ${found.table}`,
  );
  const done = new Map(rows.map((row) => [row.name, row.checksum]));
  return migrations.filter((m) => done.get(m.name) !== m.checksum).map((m) => m.name);
}
