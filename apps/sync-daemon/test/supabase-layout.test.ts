import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { pendingMigrations } from "@centrovision/core/migrations";
import postgres from "postgres";
import { describe, expect, it } from "vitest";
import { readMigrations, SHIPPED_MIGRATIONS_DIR } from "../src/migrations.js";
import { GENERATED_FILE, supabaseLayout, writeSupabaseLayout } from "../src/supabase-layout.js";
import { cloudMigrate, useEmptyProjects } from "./support/cloud.js";

const emptyProject = useEmptyProjects();
const COMMITTED = fileURLToPath(new URL("../../../supabase/migrations/", import.meta.url));
const STALE =
  "supabase/migrations/ is not what sql/ generates: run `npm run supabase:migrations` and commit it";

describe("the Supabase CLI layout", () => {
  it("is committed as generated from sql/, byte for byte", async () => {
    const expected = supabaseLayout(await readMigrations(SHIPPED_MIGRATIONS_DIR));
    const committed = readdirSync(COMMITTED)
      .filter((name) => GENERATED_FILE.test(name))
      .sort();
    expect(committed, STALE).toEqual(expected.map(({ file }) => file));
    for (const { file, content } of expected) {
      expect(readFileSync(join(COMMITTED, file), "utf8") === content, `${file}: ${STALE}`).toBe(true);
    }
  });

  it("leaves a project current for cloud migrate once the Supabase CLI applied it", async () => {
    const project = await emptyProject();
    const migrations = await readMigrations(SHIPPED_MIGRATIONS_DIR);
    const sql = postgres(project.url, { max: 1, onnotice: () => {} });
    try {
      // As `supabase db push` does: each file in one transaction, in version order, as postgres.
      for (const { content } of supabaseLayout(migrations)) await sql.begin((tx) => tx.unsafe(content));
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

  it("rewrites only what changed, removes stale generated files and keeps the team's own", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cv-supabase-layout-"));
    try {
      const files = supabaseLayout(await readMigrations(SHIPPED_MIGRATIONS_DIR));
      writeFileSync(join(dir, "00000000000042_centrovision_gone.sql"), "select 1;\n");
      writeFileSync(join(dir, "20240101000000_team_own.sql"), "select 2;\n");
      const first = await writeSupabaseLayout(dir, files);
      expect(first).toEqual({
        written: files.map(({ file }) => file),
        removed: ["00000000000042_centrovision_gone.sql"],
      });
      expect(await writeSupabaseLayout(dir, files)).toEqual({ written: [], removed: [] });
      expect(readdirSync(dir)).toContain("20240101000000_team_own.sql");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
