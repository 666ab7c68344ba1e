import {
  appendFileSync,
  cpSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { pendingMigrations } from "@centrovision/core/migrations";
import postgres from "postgres";
import { describe, expect, it } from "vitest";
import { readMigrations, SHIPPED_MIGRATIONS_DIR } from "../src/migrations.js";
import {
  GENERATED_FILE,
  readSupabaseMigrations,
  supabaseLayout,
  writeSupabaseLayout,
} from "../src/supabase-layout.js";
import { cloudMigrate, useEmptyProjects } from "./support/cloud.js";

const emptyProject = useEmptyProjects();
const COMMITTED = fileURLToPath(new URL("../../../supabase/migrations/", import.meta.url));
const STALE =
  "supabase/migrations/ is not what sql/ generates: run `npm run supabase:migrations` and commit it";

/** A temporary folder for `work`, removed afterwards. */
async function inTemp(work: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "cv-supabase-layout-"));
  try {
    await work(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const version = (file: string | undefined) => Number(file?.slice(0, 14));

describe("the Supabase CLI layout", () => {
  it("is committed as generated from sql/, byte for byte", async () => {
    const committed = await readSupabaseMigrations(COMMITTED);
    const expected = supabaseLayout(await readMigrations(SHIPPED_MIGRATIONS_DIR), committed);
    const generated = [...committed.keys()].filter((name) => GENERATED_FILE.test(name)).sort();
    expect(generated, STALE).toEqual(expected.map(({ file }) => file));
    for (const { file, content } of expected) {
      expect(committed.get(file) === content, `${file}: ${STALE}`).toBe(true);
    }
  });

  it("leaves a project current for cloud migrate once the Supabase CLI applied it", async () => {
    const project = await emptyProject();
    const migrations = await readMigrations(SHIPPED_MIGRATIONS_DIR);
    const sql = postgres(project.url, { max: 1, onnotice: () => {} });
    try {
      // As `supabase db push` does: each file in one transaction, in version order, as postgres.
      const files = supabaseLayout(migrations, await readSupabaseMigrations(COMMITTED));
      for (const { content } of files) await sql.begin((tx) => tx.unsafe(content));
      expect(await pendingMigrations(sql, migrations)).toEqual([]);
    } finally {
      await sql.end();
    }
    const [rls] = await project.sql<{ on: boolean }[]>`
      select relrowsecurity as on from pg_class where oid = 'public.patients'::regclass`;
    expect(rls?.on).toBe(true);
    const dry = await cloudMigrate(project.url, "--dry-run");
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain(`cloud schema: current (${migrations.length} migrations)`);
  });

  it("versions new files after every one in the folder, rewrites only what changed, removes stale generated files and keeps the team's own", async () => {
    await inTemp(async (dir) => {
      const migrations = await readMigrations(SHIPPED_MIGRATIONS_DIR);
      const numbered = migrations.filter((m) => !m.repeatable);
      writeFileSync(join(dir, "00000000000042_centrovision_gone.sql"), "select 1;\n");
      writeFileSync(join(dir, "20240101000000_team_own.sql"), "select 2;\n");
      const files = supabaseLayout(
        migrations,
        await readSupabaseMigrations(dir),
        new Date("2030-01-02T03:04:05Z"),
      );
      expect(files[0]?.file).toBe("20300102030405_centrovision_0001_ehr_schema.sql");
      expect(files.at(-1)?.file).toBe(`${20300102030405 + numbered.length}_centrovision_functions.sql`);
      const first = await writeSupabaseLayout(dir, files);
      expect(first).toEqual({
        written: files.map(({ file }) => file),
        removed: ["00000000000042_centrovision_gone.sql"],
      });
      // Later, with the same sql/: the names given stay.
      const again = supabaseLayout(migrations, await readSupabaseMigrations(dir), new Date("2031-01-01"));
      expect(again).toEqual(files);
      expect(await writeSupabaseLayout(dir, again)).toEqual({ written: [], removed: [] });
      expect(readdirSync(dir)).toContain("20240101000000_team_own.sql");
    });
  });

  it("adds a functions file when a function changes, and after a new numbered migration, keeping the earlier ones", async () => {
    await inTemp(async (dir) => {
      const sqlDir = join(dir, "sql");
      const layoutDir = join(dir, "layout");
      cpSync(SHIPPED_MIGRATIONS_DIR, sqlDir, { recursive: true });
      const layout = async (at: string) =>
        supabaseLayout(await readMigrations(sqlDir), await readSupabaseMigrations(layoutDir), new Date(at));
      const published = await layout("2030-01-01T00:00:00Z");
      await writeSupabaseLayout(layoutDir, published);
      const functions = published.at(-1);

      appendFileSync(join(sqlDir, "functions", "01_row_versions.sql"), "\n-- changed\n");
      // A clock behind the folder's versions still versions the new file after them.
      const changed = await layout("2020-01-01T00:00:00Z");
      const { written, removed } = await writeSupabaseLayout(layoutDir, changed);
      expect(removed).toEqual([]);
      expect(written).toEqual([`${version(functions?.file) + 1}_centrovision_functions.sql`]);
      expect(readFileSync(join(layoutDir, written[0] ?? ""), "utf8")).toContain("-- changed");
      expect(readFileSync(join(layoutDir, functions?.file ?? ""), "utf8")).toBe(functions?.content);

      writeFileSync(
        join(sqlDir, "0099_extra.sql"),
        "create table public.cv_extra (id integer primary key);\n",
      );
      const grown = await writeSupabaseLayout(layoutDir, await layout("2040-01-01T00:00:00Z"));
      expect(grown).toEqual({
        written: ["20400101000000_centrovision_0099_extra.sql", "20400101000001_centrovision_functions.sql"],
        removed: [],
      });
    });
  });
});
