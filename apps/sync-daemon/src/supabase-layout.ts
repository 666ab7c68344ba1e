import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { CvError } from "@centrovision/core";
import {
  BOOKKEEPING_SQL,
  type Migration,
  REPEATABLE_DIR,
  recordMigrationSql,
} from "@centrovision/core/migrations";

/**
 * The `sql/` migrations laid out for the Supabase CLI (`supabase/migrations/<version>_<name>.sql`,
 * applied by `supabase db push` as `postgres`). Each file ends with the bookkeeping
 * `centrovision-sync cloud migrate` keeps, so a project migrated by either tool is current for
 * `cloud migrate` (same names and checksums in `cv_meta.schema_migrations`).
 *
 * The CLI applies each version once, pushes only versions above the last one it applied (unless
 * `--include-all`), and refuses to push while a version it applied is missing from the folder. So
 * a file keeps the version it was first written with, and a new one gets a version above every
 * one in the folder: the current UTC time, as `supabase migration new` would, or one past the
 * highest. The repeatable `sql/functions/` files have no version of their own: they are laid out
 * together in a functions file, and whenever that would differ from the newest one (a function
 * changed, or a numbered migration was added, after which core's runner applies them again) a new
 * functions file is written. The earlier ones stay: projects have applied their versions.
 */

export interface SupabaseMigrationFile {
  /**
   * `<version>_centrovision_NNNN_name.sql` for sql/NNNN_name.sql, `<version>_centrovision_functions.sql`
   * for sql/functions/; the first ones kept their first name, `0000000000NNNN_centrovision_name.sql`.
   */
  readonly file: string;
  readonly content: string;
}

const SOURCE = /^(\d{4})_([a-z0-9_]+)\.sql$/;
/** What this generator writes; anything else in the folder is the team's own and left alone. */
export const GENERATED_FILE = /^\d{14}_centrovision_[a-z0-9_]+\.sql$/;
const FUNCTIONS_FILE = /^\d{14}_centrovision_functions\.sql$/;
/** A Supabase CLI migration, of ours or the team's: `supabase migration new` names them so. */
const CLI_MIGRATION = /^(\d{14})_.*\.sql$/;

/** The Supabase CLI migrations in `dir` (none when it does not exist), by file name. */
export async function readSupabaseMigrations(dir: string): Promise<Map<string, string>> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((name) => CLI_MIGRATION.test(name));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return new Map();
    throw error;
  }
  return new Map(
    await Promise.all(names.map(async (name) => [name, await readFile(join(dir, name), "utf8")] as const)),
  );
}

const endLine = (sql: string) => (sql.endsWith("\n") ? "" : "\n");

function numberedContent(migration: Migration): string {
  const source = `sql/${migration.name}`;
  return [
    `-- Generated from ${source} by \`npm run supabase:migrations\`: do not edit (edit ${source} and run that again).\n`,
    migration.sql,
    endLine(migration.sql),
    `\n-- What \`centrovision-sync cloud migrate\` records: the project counts as having ${source}.`,
    BOOKKEEPING_SQL,
    `\n${recordMigrationSql(migration)}\n`,
  ].join("");
}

function functionsContent(repeatables: readonly Migration[]): string {
  return [
    `-- Generated from sql/${REPEATABLE_DIR}/ by \`npm run supabase:migrations\`: do not edit (edit those files and run that again).\n`,
    "-- The functions as they were when this file was written, applied after every migration before it.\n",
    "-- A later functions file supersedes it; it stays because projects have applied its version.\n",
    ...repeatables.map(
      (migration) => `\n-- sql/${migration.name}\n${migration.sql}${endLine(migration.sql)}`,
    ),
    "\n-- What `centrovision-sync cloud migrate` records: the project counts as having these files.",
    BOOKKEEPING_SQL,
    `\n${repeatables.map(recordMigrationSql).join("\n")}\n`,
  ].join("");
}

/**
 * Every generated file the Supabase CLI folder holding `existing` (its migrations by file name:
 * `readSupabaseMigrations`) should hold for `migrations` (read from a `sql/` folder), in version
 * order: those already there keep their names, new ones are versioned after all of them at `now`.
 */
export function supabaseLayout(
  migrations: readonly Migration[],
  existing: ReadonlyMap<string, string>,
  now: Date = new Date(),
): SupabaseMigrationFile[] {
  let last = [...existing.keys()].reduce((highest, name) => {
    const version = CLI_MIGRATION.exec(name)?.[1] ?? "";
    return version > highest ? version : highest;
  }, "");
  const time = now.toISOString().replace(/\D/g, "").slice(0, 14);
  const nextVersion = () => {
    last = time > last ? time : (BigInt(last) + 1n).toString().padStart(14, "0");
    return last;
  };
  const generated = [...existing.keys()].filter((name) => GENERATED_FILE.test(name));
  const files: SupabaseMigrationFile[] = [];
  for (const migration of migrations.filter((m) => !m.repeatable)) {
    const match = SOURCE.exec(migration.name);
    if (!match) {
      throw new CvError(
        "invalid_input",
        `[sync-daemon] ${migration.name} is not a sql/ migration (NNNN_name.sql): only a folder's migrations have a Supabase layout`,
      );
    }
    const [, number, name] = match;
    // The first files took their version from the sql/ number, and keep it.
    const first = `0000000000${number}_centrovision_${name}.sql`;
    const published = existing.has(first)
      ? first
      : generated.find((file) => file.endsWith(`_centrovision_${number}_${name}.sql`));
    files.push({
      file: published ?? `${nextVersion()}_centrovision_${number}_${name}.sql`,
      content: numberedContent(migration),
    });
  }
  const earlier = [...existing]
    .filter(([file]) => FUNCTIONS_FILE.test(file))
    .map(([file, content]) => ({ file, content }))
    .sort((a, b) => (a.file < b.file ? -1 : 1));
  files.push(...earlier);
  const repeatables = migrations.filter((m) => m.repeatable);
  if (repeatables.length > 0) {
    const content = functionsContent(repeatables);
    if (earlier.at(-1)?.content !== content) {
      files.push({ file: `${nextVersion()}_centrovision_functions.sql`, content });
    }
  }
  return files.sort((a, b) => (a.file < b.file ? -1 : 1));
}

export interface WriteLayoutResult {
  /** Files created or rewritten because their content changed. */
  readonly written: readonly string[];
  /** Generated files whose sql/ migration no longer exists. */
  readonly removed: readonly string[];
}

/**
 * Makes `dir` hold exactly `files` among the generated names: writes those missing or different,
 * removes stale generated ones, leaves the team's own migrations alone.
 */
export async function writeSupabaseLayout(
  dir: string,
  files: readonly SupabaseMigrationFile[],
): Promise<WriteLayoutResult> {
  await mkdir(dir, { recursive: true });
  const existing = (await readdir(dir)).filter((name) => GENERATED_FILE.test(name));
  const written: string[] = [];
  for (const { file, content } of files) {
    const path = join(dir, file);
    const before = existing.includes(file) ? await readFile(path, "utf8") : undefined;
    if (before === content) continue;
    await writeFile(path, content);
    written.push(file);
  }
  const wanted = new Set(files.map(({ file }) => file));
  const removed = existing.filter((name) => !wanted.has(name));
  for (const name of removed) await rm(join(dir, name));
  return { written, removed };
}
