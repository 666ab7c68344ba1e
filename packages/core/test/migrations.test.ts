import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { pendingMigrations, readMigrations, runMigrations } from "../src/migrations/index.js";
import { createTestDatabase, type TestDatabase } from "./support/test-database.js";

let db: TestDatabase;
let dir: string;

beforeEach(async () => {
  db = await createTestDatabase("migrations", { migrate: false });
  dir = await mkdtemp(join(tmpdir(), "cv-migrations-"));
  await writeFile(join(dir, "0001_first.sql"), "create table first (id int primary key);");
  await writeFile(join(dir, "0002_second.sql"), "create table second (id int primary key);");
  await writeFile(join(dir, "notes.txt"), "not a migration");
});

afterEach(async () => {
  await db.drop();
  await rm(dir, { recursive: true, force: true });
});

describe("the migration runner", () => {
  it("applies numbered files in order once; a second run is a no-op", async () => {
    expect(await pendingMigrations(db.sql, await readMigrations(dir))).toEqual([
      "0001_first.sql",
      "0002_second.sql",
    ]);
    expect(await runMigrations(db.sql, await readMigrations(dir))).toEqual([
      "0001_first.sql",
      "0002_second.sql",
    ]);
    expect(await runMigrations(db.sql, await readMigrations(dir))).toEqual([]);
    expect(await pendingMigrations(db.sql, await readMigrations(dir))).toEqual([]);
    expect(await db.sql`select to_regclass('second') is not null as ok`).toEqual([{ ok: true }]);
  });

  it("refuses a migration edited after it was applied, and applies nothing after it", async () => {
    await runMigrations(db.sql, await readMigrations(dir));
    await writeFile(join(dir, "0001_first.sql"), "create table first (id bigint primary key);");
    await writeFile(join(dir, "0003_third.sql"), "create table third (id int primary key);");
    await expect(runMigrations(db.sql, await readMigrations(dir))).rejects.toMatchObject({
      code: "conflict",
      message: expect.stringMatching(/0001_first\.sql changed after it was applied/),
    });
    expect(await db.sql`select to_regclass('third') is not null as ok`).toEqual([{ ok: false }]);
  });

  it("rolls a failing migration back whole and says which one", async () => {
    await writeFile(join(dir, "0003_broken.sql"), "create table third (id int); select no_such_function();");
    await expect(runMigrations(db.sql, await readMigrations(dir))).rejects.toThrow(/no_such_function/);
    expect(await db.sql`select to_regclass('third') is not null as ok`).toEqual([{ ok: false }]);
    expect(await pendingMigrations(db.sql, await readMigrations(dir))).toEqual(["0003_broken.sql"]);
  });

  it("keeps its records outside public, moving those an earlier version kept in public.cv_schema_migrations", async () => {
    const [first] = await readMigrations(dir);
    await db.sql`create table first (id int primary key)`;
    await db.sql`create table public.cv_schema_migrations (name text primary key, checksum text not null,
      applied_at timestamptz not null default now())`;
    await db.sql`insert into public.cv_schema_migrations (name, checksum) values (${first?.name ?? ""}, ${first?.checksum ?? ""})`;
    expect(await pendingMigrations(db.sql, await readMigrations(dir))).toEqual(["0002_second.sql"]);
    expect(await runMigrations(db.sql, await readMigrations(dir))).toEqual(["0002_second.sql"]);
    const [where] = await db.sql<{ moved: string | null; legacy: string | null }[]>`
      select to_regclass('cv_meta.schema_migrations')::text as moved,
        to_regclass('public.cv_schema_migrations')::text as legacy`;
    expect(where).toEqual({ moved: "cv_meta.schema_migrations", legacy: null });
    expect(
      (await db.sql`select name from cv_meta.schema_migrations order by name`).map((r) => r.name),
    ).toEqual(["0001_first.sql", "0002_second.sql"]);
  });

  it("names the folder it cannot read", async () => {
    await expect(readMigrations(join(dir, "missing"))).rejects.toMatchObject({
      code: "invalid_config",
      message: expect.stringMatching(/cannot read migrations in .*missing \(ENOENT\)/),
    });
  });
});
