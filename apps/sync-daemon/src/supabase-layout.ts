import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { CvError } from "@centrovision/core";
import { BOOKKEEPING_SQL, type Migration, recordMigrationSql } from "@centrovision/core/migrations";

/**
 * The `sql/` migrations laid out for the Supabase CLI (`supabase/migrations/<version>_<name>.sql`,
 * applied by `supabase db push` as `postgres`). Each file ends with the bookkeeping
 * `centrovision-sync cloud migrate` keeps, so a project migrated by either tool is current for
 * `cloud migrate` (same names and checksums in `cv_meta.schema_migrations`).
 */

export interface SupabaseMigrationFile {
  /** `0000000000NNNN_centrovision_name.sql`: ten zeros and the sql/ number, so ours sort before any timestamped migration. */
  readonly file: string;
  readonly content: string;
}

const SOURCE = /^(\d{4})_([a-z0-9_]+)\.sql$/;
/** What this generator writes; anything else in the folder is the team's own and left alone. */
export const GENERATED_FILE = /^0000000000\d{4}_centrovision_[a-z0-9_]+\.sql$/;

/** The Supabase CLI files for `migrations` (read from a `sql/` folder), in order. */
export function supabaseLayout(migrations: readonly Migration[]): SupabaseMigrationFile[] {
  return migrations.map((migration) => {
    const match = SOURCE.exec(migration.name);
    if (!match) {
      throw new CvError(
        "invalid_input",
        `[sync-daemon] ${migration.name} is not a sql/ migration (NNNN_name.sql): only a folder's migrations have a Supabase layout`,
      );
    }
    const [, number, name] = match;
    const source = `sql/${migration.name}`;
    const content = [
      `-- Generated from ${source} by \`npm run supabase:migrations\`: do not edit (edit ${source} and run that again).\n`,
      migration.sql,
      migration.sql.endsWith("\n") ? "" : "\n",
      `\n-- What \`centrovision-sync cloud migrate\` records: the project counts as having ${source}.`,
      BOOKKEEPING_SQL,
      `\n${recordMigrationSql(migration)}\n`,
    ].join("");
    return { file: `0000000000${number}_centrovision_${name}.sql`, content };
  });
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
