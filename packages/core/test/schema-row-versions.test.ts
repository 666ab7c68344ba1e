import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { canonicalTimestamp, TABLE_NAMES } from "../src/tables/index.js";
import { clinicRows, insertClinic, insertRow } from "./support/ehr-fixtures.js";
import { createTestDatabase, type TestDatabase } from "./support/test-database.js";

/* sql/0002_row_versions.sql: the database keeps created_at, updated_at, version and base_version. */

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase("cv_versions");
});
afterAll(async () => {
  await db?.drop();
});

interface Meta {
  created_at: string;
  updated_at: string;
  version: string;
  base_version: string | null;
  name: string;
}

const LONG_AGO = "2020-01-01T00:00:00.000Z";

async function newBranch(extra: Record<string, unknown> = {}): Promise<string> {
  const branch = { ...clinicRows().branches, created_at: LONG_AGO, updated_at: LONG_AGO, ...extra };
  await insertRow(db.sql, "branches", branch);
  return branch.id;
}

/** The database's clock, in milliseconds: what the trigger dates a row with, never the test's own. */
async function serverNow(): Promise<number> {
  const [row] = await db.sql<{ now: string }[]>`select now()`;
  if (row === undefined) throw new Error("select now() returned no row");
  return Date.parse(canonicalTimestamp(row.now));
}

async function meta(id: string): Promise<Meta> {
  const [row] = await db.sql<Meta[]>`
    select created_at, updated_at, version, base_version, name from branches where id = ${id}`;
  if (row === undefined) throw new Error(`branch ${id} not found`);
  return {
    ...row,
    created_at: canonicalTimestamp(row.created_at),
    updated_at: canonicalTimestamp(row.updated_at),
  };
}

describe("cv_touch_row", () => {
  it("runs before insert and update, for each row, on every EHR table", async () => {
    const triggers = await db.sql<{ table: string; tgtype: number; tgenabled: string }[]>`
      select c.relname as table, t.tgtype, t.tgenabled
      from pg_trigger t join pg_class c on c.oid = t.tgrelid
      where t.tgname = 'cv_touch_row' and c.relnamespace = 'public'::regnamespace`;
    // tgtype bits: ROW 1, BEFORE 2, INSERT 4, UPDATE 16 (no DELETE 8, no TRUNCATE 32).
    expect(triggers.map((t) => t.table).sort()).toEqual([...TABLE_NAMES].sort());
    for (const trigger of triggers)
      expect([trigger.table, trigger.tgtype, trigger.tgenabled]).toEqual([trigger.table, 23, "O"]);
  });

  it("on insert, keeps a caller's version and base_version, or defaults them; the timestamps are the server's", async () => {
    const version = randomUUID();
    const base = randomUUID();
    expect(await meta(await newBranch({ version, base_version: base }))).toMatchObject({
      version,
      base_version: base,
    });

    const before = await serverNow();
    const fresh = await meta(await newBranch());
    expect(fresh.version).toMatch(/^[0-9a-f-]{36}$/);
    expect(fresh.base_version).toBeNull();
    // The caller asked for 2020: a client's clock never dates a row (sql/0002).
    expect(Date.parse(fresh.created_at)).toBeGreaterThanOrEqual(before);
    expect(Date.parse(fresh.created_at)).toBeLessThanOrEqual(await serverNow());
    expect(fresh.updated_at).toBe(fresh.created_at);
  });

  it("on update, chains versions, moves updated_at and keeps created_at", async () => {
    const id = await newBranch();
    const before = await meta(id);
    // Timestamps are milliseconds: wait until the server's clock has left this one, so a moved
    // updated_at shows.
    await expect.poll(serverNow).toBeGreaterThan(Date.parse(before.updated_at));
    await db.sql`update branches set name = 'Sucursal Norte', created_at = now() where id = ${id}`;
    const after = await meta(id);
    expect(after.name).toBe("Sucursal Norte");
    expect(after.base_version).toBe(before.version);
    expect(after.version).not.toBe(before.version);
    expect(after.created_at).toBe(before.created_at);
    expect(after.updated_at > before.updated_at).toBe(true);
  });

  it("keeps a version the caller chose, unless it is the current one", async () => {
    const id = await newBranch();
    const chosen = randomUUID();
    const first = await meta(id);
    await db.sql`update branches set name = 'A', version = ${chosen} where id = ${id}`;
    expect(await meta(id)).toMatchObject({ version: chosen, base_version: first.version });

    await db.sql`update branches set name = 'B', version = ${chosen} where id = ${id}`;
    const third = await meta(id);
    expect(third.version).not.toBe(chosen);
    expect(third.base_version).toBe(chosen);
  });

  it("stamps every table the same way", async () => {
    const rows = clinicRows();
    await insertClinic(db.sql, rows);
    for (const table of TABLE_NAMES) {
      const id = rows[table].id;
      const [before] = await db.sql<
        { version: string }[]
      >`select version from ${db.sql(table)} where id = ${id}`;
      const [after] = await db.sql<{ version: string; base_version: string }[]>`
        update ${db.sql(table)} set updated_at = created_at where id = ${id} returning version, base_version`;
      expect({ table, base: after?.base_version }).toEqual({ table, base: before?.version });
      expect(after?.version).not.toBe(before?.version);
    }
  });
});

describe("inside a sync apply (cv_sync.begin_apply)", () => {
  it("stores replicated rows verbatim, then stamps local writes again", async () => {
    const id = await newBranch();
    const replicated = {
      created_at: "2019-06-01T12:00:00.000Z",
      updated_at: "2021-02-03T04:05:06.789Z",
      version: randomUUID(),
      base_version: randomUUID(),
    };
    const session = await db.sql.reserve();
    try {
      // A reserved connection has no begin(): one session throughout is the point of this test.
      await session`begin`;
      await session`select cv_sync.begin_apply(${randomUUID()})`;
      await session`update branches set ${session(replicated)}, name = 'Replicada' where id = ${id}`;
      await session`commit`;
      expect(await meta(id)).toEqual({ ...replicated, name: "Replicada" });

      // Same session, next transaction: a local write again.
      await session`update branches set name = 'Local' where id = ${id}`;
      expect(await meta(id)).toMatchObject({ name: "Local", base_version: replicated.version });
    } finally {
      session.release();
    }
  });

  it("inserts replicated rows verbatim", async () => {
    const replicated = {
      updated_at: "2021-02-03T04:05:06.789Z",
      base_version: randomUUID(),
      version: randomUUID(),
    };
    const branch = { ...clinicRows().branches, created_at: LONG_AGO, ...replicated };
    await db.sql.begin(async (tx) => {
      await tx`select cv_sync.begin_apply(${randomUUID()})`;
      await insertRow(tx, "branches", branch);
    });
    expect(await meta(branch.id)).toMatchObject({ created_at: LONG_AGO, ...replicated });
  });

  it("refuses a write whose session only set centrovision.sync_origin, even the owner's", async () => {
    const id = await newBranch();
    const before = await meta(id);
    const forged = db.sql.begin(async (tx) => {
      await tx`select set_config('centrovision.sync_origin', ${randomUUID()}, true)`;
      await tx`update branches set ${tx({ updated_at: "2021-02-03T04:05:06.789Z", version: randomUUID() })} where id = ${id}`;
    });
    await expect(forged).rejects.toMatchObject({ code: "42501" });
    expect(await meta(id)).toEqual(before);
  });
});
