import { randomUUID } from "node:crypto";
import { CvError } from "@centrovision/core";
import { createFixtures } from "@centrovision/testkit/contract";
import { describe, expect, it } from "vitest";
import { createSqliteSource, openSqliteReadOnly, type SqliteChangedRow } from "../src/index.js";
import { readStoredRow, useTempSource } from "./support/temp-database.js";

const fixtures = createFixtures();

describe("batch: rows and records in one durable write", () => {
  const current = useTempSource();

  it("a repository write and what its afterWrite records are one journal record", async () => {
    const branch = fixtures.branch();
    const outbox = current.source.tablesWith((batch) => {
      for (const change of batch.changes())
        batch.setRecord("outbox", `${change.table}:${change.id}`, { version: change.row?.version ?? null });
    });
    const stored = await outbox("branches").insert(branch);
    expect(await readStoredRow(current.db.path, current.db.key, "branches", branch.id)).toMatchObject({
      version: stored.version,
    });
    const reader = await openSqliteReadOnly(current.db.path, current.db.key);
    try {
      expect(reader.all("SELECT collection, key FROM cv_records")).toEqual([
        { collection: "outbox", key: `branches:${branch.id}` },
      ]);
    } finally {
      reader.close();
    }
    expect(await current.source.records("outbox")).toEqual([
      { key: `branches:${branch.id}`, value: { version: stored.version } },
    ]);
  });

  it("a write whose afterWrite throws leaves neither the row nor the record", async () => {
    const branch = fixtures.branch();
    const failing = current.source.tablesWith((batch) => {
      batch.setRecord("outbox", "k", 1);
      throw new CvError("unavailable", "[test] the outbox refused");
    });
    const error = await failing("branches")
      .insert(branch)
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "unavailable", message: "[test] the outbox refused" });
    expect(await current.source.table("branches").get(branch.id)).toBeNull();
    expect(await current.source.records("outbox")).toEqual([]);
  });

  it("records keep their first position when rewritten, and survive reopening", async () => {
    await current.source.batch((batch) => {
      batch.setRecord("q", "a", 1);
      batch.setRecord("q", "b", 2);
      batch.setRecord("q", "a", 3);
      batch.setRecord("q", "c", 4);
      batch.setRecord("q", "c", null);
    });
    await current.source.close();
    current.source = await createSqliteSource({ path: current.db.path, key: current.db.key });
    expect(await current.source.records("q")).toEqual([
      { key: "a", value: 3 },
      { key: "b", value: 2 },
    ]);
  });

  it("putVerbatim keeps another tier's version and timestamps; a normal update re-stamps", async () => {
    const made = await current.source.table("branches").insert(fixtures.branch());
    await current.source.table("branches").delete(made.id);
    const branch = {
      ...made,
      created_at: "2026-01-02T03:04:05.006Z",
      updated_at: "2026-01-02T03:04:05.007Z",
      version: randomUUID(),
      base_version: randomUUID(),
    };
    await current.source.batch((batch) => batch.putVerbatim("branches", branch));
    const copy = await current.source.table("branches").get(branch.id);
    expect(copy).toMatchObject({
      version: branch.version,
      base_version: branch.base_version,
      updated_at: branch.updated_at,
    });
    const edited = await current.source.table("branches").update(branch.id, { name: "Sucursal Norte" });
    expect(edited.base_version).toBe(branch.version);
    expect(edited.version).not.toBe(branch.version);
    await current.source.batch((batch) => batch.deleteVerbatim("branches", branch.id));
    expect(await current.source.table("branches").get(branch.id)).toBeNull();
  });

  it("rejects a verbatim row that is not a stored row of the table, naming the field", async () => {
    const error = (await current.source
      .batch((batch) => batch.putVerbatim("branches", { ...fixtures.branch() } as never))
      .catch((e: unknown) => e)) as CvError;
    expect(error.code).toBe("invalid_input");
    expect(error.issues.map((issue) => issue.path)).toContain("version");
  });

  it("rejects an empty record collection with a clear error", async () => {
    const error = (await current.source.records("").catch((e: unknown) => e)) as CvError;
    expect(error.code).toBe("invalid_input");
    expect(error.message).toMatch(/record collection must be a string/);
  });

  it("changes() lists every row a batch changed, cascades included, with its version before", async () => {
    const branch = await current.source.table("branches").insert(fixtures.branch());
    const profile = await current.source.table("profiles").insert(fixtures.profile());
    const link = await current.source.table("user_branches").insert({
      id: randomUUID(),
      user_id: profile.id,
      branch_id: branch.id,
    });
    let changes: SqliteChangedRow[] = [];
    const watched = current.source.tablesWith((batch) => {
      changes = [...changes, ...batch.changes()];
    });
    await watched("branches").update(branch.id, { name: "Sucursal Sur" });
    await watched("profiles").delete(profile.id);
    expect(changes).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ table: "branches", id: branch.id, previousVersion: branch.version }),
        { table: "profiles", id: profile.id, row: null, previousVersion: profile.version },
        { table: "user_branches", id: link.id, row: null, previousVersion: link.version },
      ]),
    );
    expect(changes).toHaveLength(3);
  });
});
