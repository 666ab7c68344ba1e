import { randomUUID } from "node:crypto";
import { appendFileSync, chmodSync, cpSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { applyMigrations } from "@centrovision/testkit";
import postgres from "postgres";
import { afterAll, describe, expect, inject, it } from "vitest";
import { defaultTls, tlsWarning } from "../src/cloud-migrate.js";
import { SHIPPED_MIGRATIONS_DIR } from "../src/migrations.js";
import type { CliResult } from "./support/cli.js";
import { cloudMigrate, useEmptyProjects } from "./support/cloud.js";

const emptyProject = useEmptyProjects();
const FUNCTIONS = readdirSync(join(SHIPPED_MIGRATIONS_DIR, "functions"))
  .filter((name) => /^\d{2}_[a-z0-9_]+\.sql$/.test(name))
  .sort()
  .map((name) => `functions/${name}`);
/** In the order applied: the numbered ones, then the repeatable functions/ files. */
const SHIPPED = [
  ...readdirSync(SHIPPED_MIGRATIONS_DIR)
    .filter((name) => /^\d{4}_[a-z0-9_]+\.sql$/.test(name))
    .sort(),
  ...FUNCTIONS,
];

const temp = mkdtempSync(join(tmpdir(), "cv-cloud-migrate-"));
afterAll(() => rmSync(temp, { recursive: true, force: true }));

/** A file in its own folder under `temp`, with `mode` set regardless of the umask. */
function tempFile(name: string, content: string, mode: number): string {
  const path = join(mkdtempSync(join(temp, "f-")), name);
  writeFileSync(path, content, { mode });
  chmodSync(path, mode);
  return path;
}

/** A copy of sql/ that `change` may edit. */
function sqlCopy(change: (dir: string) => void): string {
  const dir = mkdtempSync(join(temp, "sql-"));
  cpSync(SHIPPED_MIGRATIONS_DIR, dir, { recursive: true });
  change(dir);
  return dir;
}

const noSecret = (result: CliResult, password: string) => {
  expect(result.stdout).not.toContain(password);
  expect(result.stderr).not.toContain(password);
};

async function installed(sql: postgres.Sql) {
  const [row] = await sql<{ patients: boolean; sync: boolean; rls: boolean | null }[]>`
    select to_regclass('public.patients') is not null as patients,
      to_regnamespace('cv_sync') is not null as sync,
      (select relrowsecurity from pg_class where oid = to_regclass('public.patients')) as rls`;
  const records = await sql<{ name: string }[]>`select name from cv_meta.schema_migrations order by name`;
  return { ...row, records: records.map((record) => record.name) };
}

describe("cloud migrate", () => {
  it("installs every migration on an empty Supabase project, then finds it current", async () => {
    const project = await emptyProject();
    const dry = await cloudMigrate(project.url, "--dry-run");
    expect(dry.code, dry.stderr).toBe(0);
    for (const name of SHIPPED) expect(dry.stdout).toContain(`pending ${name}`);
    expect(dry.stdout).toContain(
      `cloud schema: ${SHIPPED.length} migration(s) pending (dry run: nothing applied)`,
    );
    expect((await installed(project.sql)).patients).toBe(false);

    const first = await cloudMigrate(project.url);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toContain(`cloud database postgres@127.0.0.1:`);
    for (const name of SHIPPED) expect(first.stdout).toContain(`applied ${name}`);
    expect(first.stdout).toContain(`cloud schema: applied ${SHIPPED.length} migration(s)`);
    expect(await installed(project.sql)).toEqual({ patients: true, sync: true, rls: true, records: SHIPPED });

    // The same project again, its connection string from an owner-only file this time.
    const file = tempFile("cloud-db-url", `${project.url}\n`, 0o600);
    const second = await cloudMigrate("", "--db-url-file", file);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).not.toContain("applied");
    expect(second.stdout).toContain(`cloud schema: current (${SHIPPED.length} migrations)`);
    for (const result of [dry, first, second]) noSecret(result, project.password);
  });

  it("refuses a migration edited after it was applied, applying nothing after it; applies a new one, and a changed function", async () => {
    const project = await emptyProject();
    await applyMigrations(project.url);
    const extra = "create table public.cv_extra_probe (id integer primary key);\n";
    const edited = sqlCopy((dir) => {
      appendFileSync(join(dir, "0009_health.sql"), "\n-- edited after it shipped\n");
      writeFileSync(join(dir, "0099_extra.sql"), extra);
    });
    const refused = await cloudMigrate(project.url, "--migrations-dir", edited);
    // 78: a person must reconcile the tree and the database; running again cannot.
    expect(refused.code).toBe(78);
    expect(refused.stderr).toContain("migration 0009_health.sql changed after it was applied");
    expect(refused.stdout).not.toContain("applied 0099_extra.sql");
    const [before] = await project.sql`select to_regclass('public.cv_extra_probe') is null as absent`;
    expect(before?.absent).toBe(true);

    const grown = sqlCopy((dir) => writeFileSync(join(dir, "0099_extra.sql"), extra));
    const upgrade = await cloudMigrate(project.url, "--migrations-dir", grown);
    expect(upgrade.code, upgrade.stderr).toBe(0);
    // A numbered migration may replace a function of functions/: they follow it again.
    for (const name of ["0099_extra.sql", ...FUNCTIONS]) expect(upgrade.stdout).toContain(`applied ${name}`);
    expect(upgrade.stdout).toContain(`cloud schema: applied ${1 + FUNCTIONS.length} migration(s)`);
    const [after] = await project.sql`select to_regclass('public.cv_extra_probe') is null as absent`;
    expect(after?.absent).toBe(false);

    const fixed = sqlCopy((dir) => {
      writeFileSync(join(dir, "0099_extra.sql"), extra);
      appendFileSync(join(dir, "functions", "01_row_versions.sql"), "\n-- a fix, edited in place\n");
    });
    const dry = await cloudMigrate(project.url, "--dry-run", "--migrations-dir", fixed);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain("pending functions/01_row_versions.sql");
    expect(dry.stdout).toContain("cloud schema: 1 migration(s) pending (dry run: nothing applied)");
    const fix = await cloudMigrate(project.url, "--migrations-dir", fixed);
    expect(fix.code, fix.stderr).toBe(0);
    expect(fix.stdout).toContain("applied functions/01_row_versions.sql");
    expect(fix.stdout).toContain("cloud schema: applied 1 migration(s)");
  });

  it("takes the connection string only from an owner-only file or the environment (exit 78)", async () => {
    const secret = `postgresql://postgres:${randomUUID()}@db.example.supabase.co:5432/postgres`;
    const open = tempFile("cloud-db-url", secret, 0o644);
    const tooOpen = await cloudMigrate("", "--db-url-file", open);
    expect(tooOpen.code).toBe(78);
    expect(tooOpen.stderr).toContain("centrovision-sync: invalid configuration:\n");
    expect(tooOpen.stderr).toContain(
      `--db-url-file: ${open} is readable by others (mode 0644): run chmod 600`,
    );

    const missing = await cloudMigrate("", "--db-url-file", join(temp, "no-such-file"));
    expect(missing.code).toBe(78);
    expect(missing.stderr).toMatch(/--db-url-file: cannot read .*no-such-file \(ENOENT\)/);

    const none = await cloudMigrate("");
    expect(none.code).toBe(78);
    expect(none.stderr).toContain("CENTROVISION_CLOUD_DB_URL: not set");

    const both = await cloudMigrate(secret, "--db-url-file", open);
    expect(both.code).toBe(78);
    expect(both.stderr).toContain("give --db-url-file or CENTROVISION_CLOUD_DB_URL, not both");

    const garbled = await cloudMigrate(`not a url ${randomUUID()}`);
    expect(garbled.code).toBe(78);
    expect(garbled.stderr).toContain("CENTROVISION_CLOUD_DB_URL: not a postgresql:// connection string");
    for (const result of [tooOpen, missing, none, both, garbled]) {
      noSecret(result, new URL(secret).password);
      expect(result.stdout + result.stderr).not.toContain("not a url ");
    }
  });

  it("refuses a plain PostgreSQL database (no Supabase shape) and applies nothing", async () => {
    const database = `plain_${randomUUID().slice(0, 8)}`;
    const root = postgres(inject("postgresUrl"), { max: 1, onnotice: () => {} });
    await root.unsafe(`create database "${database}"`);
    const url = new URL(inject("postgresUrl"));
    url.pathname = `/${database}`;
    const plain = postgres(url.href, { max: 1, onnotice: () => {} });
    try {
      const refused = await cloudMigrate(url.href);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain(
        "is not a Supabase project: it has no schema auth, function auth.uid()",
      );
      expect(refused.stderr).toContain("The cloud needs Supabase's auth schema and roles");
      expect(refused.stderr).toContain("the migrations set up a clinic server's own identity instead");
      expect(refused.stderr).toContain("Nothing was applied");
      noSecret(refused, decodeURIComponent(url.password));
      const [meta] = await plain`select to_regnamespace('cv_meta') is null as absent`;
      expect(meta?.absent).toBe(true);
    } finally {
      await plain.end();
      await root.unsafe(`drop database "${database}" with (force)`);
      await root.end();
    }
  });

  it("says which login was refused, without its password", async () => {
    const project = await emptyProject();
    const wrong = new URL(project.url);
    const password = `wrong-${randomUUID()}`;
    wrong.password = password;
    const refused = await cloudMigrate(wrong.href);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/postgres@127\.0\.0\.1:\d+\/\w+ refused the login \(SQLSTATE 28P01/);
    noSecret(refused, password);
    noSecret(refused, project.password);
  });

  it("requires TLS to a remote project without sslmode, and warns when it is not verified", () => {
    const remote = "postgresql://postgres:s3cr3t@db.abc.supabase.co:5432/postgres";
    expect(defaultTls(remote)).toEqual({ ssl: "require" });
    expect(defaultTls(`${remote}?sslmode=verify-full`)).toEqual({});
    expect(defaultTls("postgres://postgres:pw@127.0.0.1:5432/postgres")).toEqual({});
    expect(tlsWarning(remote)).toMatch(
      /^warning: sslmode=require: .* encrypted but its certificate is not checked; append \?sslmode=verify-full/,
    );
    expect(tlsWarning(`${remote}?sslmode=disable`)).toContain("is not encrypted");
    expect(tlsWarning(`${remote}?sslmode=verify-full`)).toBeUndefined();
    expect(tlsWarning("postgres://postgres:pw@127.0.0.1:5432/postgres")).toBeUndefined();
    expect(tlsWarning(remote)).not.toContain("s3cr3t");
  });
});
