import { createHash } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import type postgres from "postgres";
import { CvError } from "../errors.js";
import { PRODUCT_VERSION } from "../version.js";

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

/**
 * The product version of the newest build that migrated the database (one row). Not part of
 * {@link BOOKKEEPING_SQL}, which the Supabase CLI files embed: a project migrated only by
 * `supabase db push` has no row, and the check below then rests on the migration names alone.
 */
const PRODUCT_SQL = `
  create table if not exists cv_meta.product (
    only_row boolean primary key default true check (only_row),
    version text not null,
    migrated_at timestamptz not null default now()
  );`;

const VERSION = /^(\d+)\.(\d+)\.(\d+)(?:[-+].*)?$/;

/** Orders two `x.y.z` versions (a pre-release or build suffix is not compared): < 0 when `a` is older. */
function compareVersions(a: string, b: string): number {
  const parse = (version: string) => {
    const match = VERSION.exec(version);
    if (!match)
      throw new CvError("invalid_input", `[core] ${JSON.stringify(version)} is not a version (x.y.z)`);
    return match.slice(1, 4).map(Number) as [number, number, number];
  };
  const [x, y] = [parse(a), parse(b)];
  return x[0] - y[0] || x[1] - y[1] || x[2] - y[2];
}

/**
 * Refuses a database a newer build has migrated: a numbered migration recorded there that
 * `migrations` does not have, or a recorded product version above `version`. This build would
 * apply its older function bodies over the newer ones, and run code that does not know the newer
 * schema. `conflict`, saying which version to install. Reads only what this login may read;
 * nothing when the database was never migrated.
 */
export async function refuseNewerDatabase(
  sql: postgres.Sql | postgres.TransactionSql,
  migrations: readonly Migration[],
  version: string = PRODUCT_VERSION,
): Promise<void> {
  // What this login may read: the sync login gets both from `init`; one older than the product
  // table reads only the names until the next `init` grants it.
  const [tables] = await sql<{ migrations: boolean; product: boolean }[]>`
    select coalesce(s.usable and has_table_privilege(to_regclass('cv_meta.schema_migrations'), 'select'), false) as migrations,
      coalesce(s.usable and has_table_privilege(to_regclass('cv_meta.product'), 'select'), false) as product
    from (select case when to_regnamespace('cv_meta') is null then false
                      else has_schema_privilege('cv_meta', 'usage') end as usable) s`;
  const known = new Set(migrations.map((migration) => migration.name));
  const unknown = tables?.migrations
    ? (await sql<{ name: string }[]>`select name from cv_meta.schema_migrations order by name`)
        .map((row) => row.name)
        .filter((name) => MIGRATION_FILE.test(name) && !known.has(name))
    : [];
  const [recorded] = tables?.product
    ? await sql<{ version: string }[]>`select version from cv_meta.product`
    : [];
  const newer = recorded !== undefined && compareVersions(recorded.version, version) > 0;
  if (unknown.length === 0 && !newer) return;
  const by = newer ? `CentroVision ${recorded?.version}` : "a newer CentroVision";
  const what = unknown.length > 0 ? ` (it has ${unknown.join(", ")}, which this build does not know)` : "";
  throw new CvError(
    "conflict",
    `[core] this database was migrated by ${by}${what}; this build is ${version} and would run older code against it: install ${newer ? `version ${recorded?.version} or newer` : "the newer version"} of CentroVision here (for the clinic server: the centrovision-sync package)`,
  );
}

function changed(name: string): CvError {
  return new CvError(
    "conflict",
    `[core] migration ${name} changed after it was applied to this database: the tree and the database have drifted; add a new numbered migration instead of editing an applied one (a function's current definition is edited in ${REPEATABLE_DIR}/)`,
  );
}

export interface RunMigrationsOptions {
  /** The product version recorded as having migrated the database; default `PRODUCT_VERSION`. */
  readonly version?: string;
  /** Called with each migration's name once it is committed, before the next one starts. */
  readonly onApplied?: (name: string) => void;
}

/**
 * Applies the migrations `sql` has not had yet, in order, each in its own transaction under an
 * advisory lock (two runners at once are safe), and returns the names applied: [] when current.
 * A repeatable migration is applied again whenever its checksum differs from the recorded one. A
 * numbered migration edited after it was applied is refused (`conflict`): guessing which side is
 * right could lose data. So is a database a newer build migrated ({@link refuseNewerDatabase}),
 * checked again before each migration is applied; at the end `version` is recorded as the
 * database's product version.
 */
export async function runMigrations(
  sql: postgres.Sql,
  migrations: readonly Migration[],
  options: RunMigrationsOptions = {},
): Promise<string[]> {
  const { version = PRODUCT_VERSION, onApplied } = options;
  const lock = (tx: postgres.TransactionSql) =>
    tx`select pg_advisory_xact_lock(hashtext('cv_schema_migrations'))`;
  await sql.begin(async (tx) => {
    await lock(tx);
    await tx.unsafe(BOOKKEEPING_SQL);
    await refuseNewerDatabase(tx, migrations, version);
  });
  const applied: string[] = [];
  for (const migration of migrations) {
    await sql.begin(async (tx) => {
      await lock(tx);
      const [done] = await tx<{ checksum: string }[]>`
        select checksum from cv_meta.schema_migrations where name = ${migration.name}`;
      if (done?.checksum === migration.checksum) return;
      if (done && !migration.repeatable) throw changed(migration.name);
      // Another runner, of a newer build, may have migrated the database since the check above.
      await refuseNewerDatabase(tx, migrations, version);
      await tx.unsafe(migration.sql);
      await tx.unsafe(recordMigrationSql(migration));
      applied.push(migration.name);
    });
    if (applied.at(-1) === migration.name) onApplied?.(migration.name);
  }
  await sql.begin(async (tx) => {
    await lock(tx);
    await refuseNewerDatabase(tx, migrations, version);
    await tx.unsafe(PRODUCT_SQL);
    await tx`
      insert into cv_meta.product (version) values (${version})
      on conflict (only_row) do update set version = excluded.version, migrated_at = now()
      where cv_meta.product.version <> excluded.version`;
  });
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
