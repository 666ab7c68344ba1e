import type { Command } from "commander";
import { CLOUD_DB_URL_ENV, cloudDbUrl, migrateCloud, tlsWarning } from "../cloud-migrate.js";
import { redactUrl } from "../config/load-config.js";
import { readMigrations, SHIPPED_MIGRATIONS_DIR } from "../migrations.js";
import { readSupabaseMigrations, supabaseLayout, writeSupabaseLayout } from "../supabase-layout.js";

/**
 * `cloud migrate`: the cloud schema, from a developer's machine (no sync.toml). The hidden
 * `cloud supabase-layout` writes the same migrations for the Supabase CLI (`npm run
 * supabase:migrations` runs it).
 */
export function addCloudCommand(program: Command, print: (text: string) => void): void {
  const cloud = program.command("cloud").description("the cloud (Supabase project) schema");

  cloud
    .command("migrate")
    .description(
      `install or upgrade the Supabase project's schema (sql/; idempotent), its connection string from ${CLOUD_DB_URL_ENV} or --db-url-file`,
    )
    .option(
      "--db-url-file <file>",
      `a file holding the connection string, owner-only (instead of ${CLOUD_DB_URL_ENV})`,
    )
    .option("--dry-run", "list the pending migrations (changed functions/ files too), apply nothing")
    .option("--migrations-dir <dir>", "migrations to apply instead of the shipped sql/")
    .action(async (options: { dbUrlFile?: string; dryRun?: boolean; migrationsDir?: string }) => {
      const url = cloudDbUrl(options.dbUrlFile, process.env[CLOUD_DB_URL_ENV]);
      print(`cloud database ${redactUrl(url)}`);
      const warning = tlsWarning(url);
      if (warning) process.stderr.write(`${warning}\n`);
      const verb = options.dryRun ? "pending" : "applied";
      const { migrations, total } = await migrateCloud(url, {
        ...(options.migrationsDir !== undefined && { migrationsDir: options.migrationsDir }),
        ...(options.dryRun && { dryRun: true }),
        onMigration: (name) => print(`${verb} ${name}`),
      });
      const count = `${migrations.length} migration(s)`;
      print(
        migrations.length === 0
          ? `cloud schema: current (${total} migrations)`
          : options.dryRun
            ? `cloud schema: ${count} pending (dry run: nothing applied)`
            : `cloud schema: applied ${count}`,
      );
    });

  cloud
    .command("supabase-layout <dir>", { hidden: true })
    .description(
      "write the sql/ migrations as Supabase CLI migrations into <dir> (npm run supabase:migrations)",
    )
    .option("--migrations-dir <dir>", "migrations to lay out instead of the shipped sql/")
    .action(async (dir: string, options: { migrationsDir?: string }) => {
      const migrations = await readMigrations(
        options.migrationsDir ?? SHIPPED_MIGRATIONS_DIR,
        "--migrations-dir",
      );
      const files = supabaseLayout(migrations, await readSupabaseMigrations(dir));
      const { written, removed } = await writeSupabaseLayout(dir, files);
      for (const file of written) print(`wrote ${file}`);
      for (const file of removed) print(`removed ${file} (its sql/ migration is gone)`);
      print(
        written.length + removed.length === 0
          ? `supabase layout: current (${files.length} files)`
          : `supabase layout: ${written.length} written, ${removed.length} removed`,
      );
    });
}
