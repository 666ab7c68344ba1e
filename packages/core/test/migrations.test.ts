import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MIGRATIONS_DIR } from "@centrovision/testkit";
import type postgres from "postgres";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { PRODUCT_VERSION } from "../src/index.js";
import {
  pendingMigrations,
  readMigrations,
  refuseNewerDatabase,
  runMigrations,
} from "../src/migrations/index.js";
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
    const landed: string[] = [];
    expect(
      await runMigrations(db.sql, await readMigrations(dir), { onApplied: (name) => landed.push(name) }),
    ).toEqual(["0001_first.sql", "0002_second.sql"]);
    expect(landed).toEqual(["0001_first.sql", "0002_second.sql"]);
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

  it("records the product version, and an older build refuses a database a newer one migrated", async () => {
    await runMigrations(db.sql, await readMigrations(dir));
    expect(await db.sql`select version from cv_meta.product`).toEqual([{ version: PRODUCT_VERSION }]);
    // A newer build adds a migration and records its version.
    await writeFile(join(dir, "0003_third.sql"), "create table third (id int primary key);");
    expect(await runMigrations(db.sql, await readMigrations(dir), { version: "9.4.0" })).toEqual([
      "0003_third.sql",
    ]);
    // The older build (without 0003, at PRODUCT_VERSION) meets it: it refuses, naming both.
    await rm(join(dir, "0003_third.sql"));
    const older = await readMigrations(dir);
    const refusal = {
      code: "conflict",
      message: expect.stringMatching(
        new RegExp(
          `migrated by CentroVision 9\\.4\\.0 \\(it has 0003_third\\.sql, which this build does not know\\); this build is ${PRODUCT_VERSION.replaceAll(".", "\\.")}.*install version 9\\.4\\.0 or newer`,
        ),
      ),
    };
    await expect(refuseNewerDatabase(db.sql, older)).rejects.toMatchObject(refusal);
    await expect(runMigrations(db.sql, older)).rejects.toMatchObject(refusal);
    // A newer build that changed only functions is refused by its version alone.
    await db.sql`delete from cv_meta.schema_migrations where name = '0003_third.sql'`;
    await expect(refuseNewerDatabase(db.sql, older)).rejects.toMatchObject({
      message: expect.stringMatching(/migrated by CentroVision 9\.4\.0; this build is/),
    });
    // The same or a newer build is welcome, and records the newer version.
    await expect(refuseNewerDatabase(db.sql, older, "9.4.0")).resolves.toBeUndefined();
    await runMigrations(db.sql, older, { version: "10.0.0" });
    expect(await db.sql`select version from cv_meta.product`).toEqual([{ version: "10.0.0" }]);
  });

  it("checks a database never migrated, and one migrated by Supabase's CLI alone (names, no version), without failing", async () => {
    await expect(refuseNewerDatabase(db.sql, await readMigrations(dir))).resolves.toBeUndefined();
    await runMigrations(db.sql, await readMigrations(dir));
    await db.sql`drop table cv_meta.product`;
    await db.sql`insert into cv_meta.schema_migrations (name, checksum) values ('0009_later.sql', 'x')`;
    await expect(refuseNewerDatabase(db.sql, await readMigrations(dir))).rejects.toMatchObject({
      message: expect.stringMatching(
        /by a newer CentroVision \(it has 0009_later\.sql.*install the newer version/,
      ),
    });
  });

  it("orders versions by number, not as text, and ignores a pre-release suffix", async () => {
    const migrations = await readMigrations(dir);
    await runMigrations(db.sql, migrations, { version: "0.10.0" });
    await expect(refuseNewerDatabase(db.sql, migrations, "0.9.9")).rejects.toMatchObject({
      code: "conflict",
    });
    await expect(refuseNewerDatabase(db.sql, migrations, "0.10.0-beta.1")).resolves.toBeUndefined();
    await expect(refuseNewerDatabase(db.sql, migrations, "1.0.0")).resolves.toBeUndefined();
    await expect(refuseNewerDatabase(db.sql, migrations, "latest")).rejects.toThrow(
      /"latest" is not a version \(x\.y\.z\)/,
    );
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

/** Function `name` in `sql` as PostgreSQL prints it back, with who may call it. */
async function definition(sql: postgres.Sql, name: string): Promise<string | undefined> {
  const [row] = await sql<{ def: string }[]>`
    select pg_get_functiondef(oid) || '-- ' || coalesce(proacl::text, '') as def from pg_proc where oid = ${name}::regproc`;
  return row?.def;
}

const FUNCTION = /CREATE OR REPLACE FUNCTION ([a-z_]+\.[a-z_]+)\(/g;

const fold = (n: number) => `create or replace function fold() returns int language sql return ${n};\n`;

describe("repeatable migrations (functions/)", () => {
  beforeEach(async () => {
    await mkdir(join(dir, "functions"));
    // Its body is checked when created: the table of 0002 must be there already.
    await writeFile(
      join(dir, "functions", "02_count.sql"),
      "create or replace function count_second() returns bigint language sql return (select count(*) from second);\n",
    );
    await writeFile(join(dir, "functions", "01_fold.sql"), fold(1));
    await writeFile(join(dir, "functions", "notes.txt"), "not a migration");
  });

  it("applies them after the numbered ones, in name order, recorded under functions/", async () => {
    expect(await runMigrations(db.sql, await readMigrations(dir))).toEqual([
      "0001_first.sql",
      "0002_second.sql",
      "functions/01_fold.sql",
      "functions/02_count.sql",
    ]);
    expect(await db.sql`select fold(), count_second()`).toEqual([{ fold: 1, count_second: "0" }]);
    expect(
      (await db.sql`select name from cv_meta.schema_migrations order by name`).map((r) => r.name),
    ).toEqual(["0001_first.sql", "0002_second.sql", "functions/01_fold.sql", "functions/02_count.sql"]);
  });

  it("applies one again when it changed, and only then; pending lists it", async () => {
    await runMigrations(db.sql, await readMigrations(dir));
    expect(await runMigrations(db.sql, await readMigrations(dir))).toEqual([]);
    await writeFile(join(dir, "functions", "01_fold.sql"), fold(2));
    expect(await pendingMigrations(db.sql, await readMigrations(dir))).toEqual(["functions/01_fold.sql"]);
    expect(await runMigrations(db.sql, await readMigrations(dir))).toEqual(["functions/01_fold.sql"]);
    expect(await db.sql`select fold()`).toEqual([{ fold: 2 }]);
    const changed = (await readMigrations(dir)).find((m) => m.name === "functions/01_fold.sql");
    expect(
      await db.sql`select checksum from cv_meta.schema_migrations where name = 'functions/01_fold.sql'`,
    ).toEqual([{ checksum: changed?.checksum }]);
    expect(await pendingMigrations(db.sql, await readMigrations(dir))).toEqual([]);
  });

  it("rolls a failing one back whole, keeping the definition it would have replaced", async () => {
    await runMigrations(db.sql, await readMigrations(dir));
    await writeFile(join(dir, "functions", "01_fold.sql"), `${fold(3)}select no_such_function();\n`);
    await expect(runMigrations(db.sql, await readMigrations(dir))).rejects.toThrow(/no_such_function/);
    expect(await db.sql`select fold()`).toEqual([{ fold: 1 }]);
    expect(await pendingMigrations(db.sql, await readMigrations(dir))).toEqual(["functions/01_fold.sql"]);
  });

  it("applies them all again after a new numbered migration, which may have replaced one of their functions", async () => {
    await runMigrations(db.sql, await readMigrations(dir));
    await writeFile(join(dir, "0003_third.sql"), fold(9));
    expect(await pendingMigrations(db.sql, await readMigrations(dir))).toEqual([
      "0003_third.sql",
      "functions/01_fold.sql",
      "functions/02_count.sql",
    ]);
    await runMigrations(db.sql, await readMigrations(dir));
    expect(await db.sql`select fold()`).toEqual([{ fold: 1 }]);
  });
});

describe("the shipped sql/functions/", () => {
  it("brings a database migrated before they existed to the same functions as a fresh one", async () => {
    const shipped = await readMigrations(MIGRATIONS_DIR);
    const repeatable = shipped.filter((m) => m.repeatable);
    expect(repeatable.map((m) => m.name)).toContain("functions/01_row_versions.sql");
    // As a clinic server or the cloud in the field: 0001-0013, no functions/ yet.
    const field = shipped.filter((m) => !m.repeatable && m.name < "0014");
    await runMigrations(db.sql, field);
    const before = await definition(db.sql, "cv_sync.write_rows");
    expect(await runMigrations(db.sql, shipped)).toEqual(
      shipped.filter((m) => !field.includes(m)).map((m) => m.name),
    );
    const fresh = await createTestDatabase("migrations_fresh");
    try {
      const names = [
        ...new Set(repeatable.flatMap((m) => [...m.sql.matchAll(FUNCTION)].map((f) => f[1] ?? ""))),
      ];
      expect(names).toEqual(
        expect.arrayContaining(["public.cv_touch_row", "cv_sync.write_rows", "public.cv_client_apply"]),
      );
      for (const name of names) {
        const upgraded = await definition(db.sql, name);
        expect(upgraded, name).toBe(await definition(fresh.sql, name));
        // The body the file holds, not the one a numbered migration left.
        const [source] = await db.sql<
          { body: string }[]
        >`select prosrc as body from pg_proc where oid = ${name}::regproc`;
        const file = repeatable.find((m) => m.sql.includes(`FUNCTION ${name}(`))?.sql ?? "";
        if (source?.body.trim()) expect(file, name).toContain(source.body);
      }
      expect(await definition(db.sql, "cv_sync.write_rows")).not.toBe(before);
      expect(await definition(db.sql, "cv_sync.write_rows")).toContain("cv_util.update_columns(p_table)");
    } finally {
      await fresh.drop();
    }
  });
});
