import { randomUUID } from "node:crypto";
import { CvError, type NewRow, type Row, TABLE_NAMES, type TableName } from "@centrovision/core";
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

  describe("putVerbatimSet: unique keys checked once the set is written", () => {
    /** Rows stored by a repository, as another tier returns them: their stored form. */
    async function stored<T extends TableName>(table: T, rows: readonly NewRow<T>[]) {
      const repo = current.source.table(table);
      const written: Row<T>[] = [];
      for (const row of rows) written.push(await repo.insert(row as never));
      return written;
    }
    /** The tier's newer image of a row: changed columns, a new version. */
    const newer = <R extends { version: string }>(row: R, change: Partial<R>): R => ({
      ...row,
      ...change,
      base_version: row.version,
      version: randomUUID(),
    });

    it("places a swap of two patients' document numbers, and the file reopens with it", async () => {
      const [branch] = await stored("branches", [fixtures.branch()]);
      const [a, b] = await stored("patients", [
        fixtures.patient(branch?.id as string),
        fixtures.patient(branch?.id as string),
      ]);
      if (!a || !b) throw new Error("no patients");
      const swapped = [newer(a, { document_id: b.document_id }), newer(b, { document_id: a.document_id })];
      const one = await current.source
        .batch((batch) => batch.putVerbatim("patients", swapped[0] as never))
        .catch((e: unknown) => e);
      expect(one).toMatchObject({ code: "constraint", constraint: "patients_branch_id_document_id_key" });
      expect(await current.source.batch((batch) => batch.putVerbatimSet("patients", swapped))).toEqual([]);
      await current.source.close();
      current.source = await createSqliteSource({ path: current.db.path, key: current.db.key });
      expect(await current.source.table("patients").get(a.id)).toEqual(swapped[0]);
      expect(await current.source.table("patients").get(b.id)).toEqual(swapped[1]);
    });

    it("places OD and OS exchanged on an exam, a key of references and an enum", async () => {
      const clinic = fixtures.clinic();
      for (const table of TABLE_NAMES) await stored(table, [clinic[table] as never]);
      const [od] = await current.source.table("exam_eye").list({ where: { id: clinic.exam_eye.id } });
      const [os] = await stored("exam_eye", [fixtures.examEye(clinic.encounters.id, { eye: "OS" })]);
      if (!od || !os) throw new Error("no exams");
      const exchanged = [newer(od, { eye: "OS" }), newer(os, { eye: "OD" })];
      expect(await current.source.batch((batch) => batch.putVerbatimSet("exam_eye", exchanged))).toEqual([]);
      expect(await current.source.table("exam_eye").get(od.id)).toEqual(exchanged[0]);
      expect(await current.source.table("exam_eye").get(os.id)).toEqual(exchanged[1]);
    });

    it("checks references again after the set: a later broken one fails its batch, which rolls back", async () => {
      const clinic = fixtures.clinic();
      for (const table of TABLE_NAMES) await stored(table, [clinic[table] as never]);
      const [od] = await current.source.table("exam_eye").list({ where: { id: clinic.exam_eye.id } });
      const [os] = await stored("exam_eye", [fixtures.examEye(clinic.encounters.id, { eye: "OS" })]);
      const patient = await current.source.table("patients").get(clinic.patients.id);
      if (!od || !os || !patient) throw new Error("no rows");
      const error = await current.source
        .batch((batch) => {
          batch.putVerbatimSet("exam_eye", [newer(od, { eye: "OS" }), newer(os, { eye: "OD" })]);
          batch.putVerbatim("patients", newer(patient, { branch_id: randomUUID() }));
        })
        .catch((e: unknown) => e);
      expect(error).toMatchObject({ code: "constraint" });
      // Deferred to the commit, the failure came after the journal record: this write was refused
      // ("reopen the source") and the file did not reopen.
      await current.source.table("patients").update(patient.id, { phone: "55 2222 3333" });
      await current.source.close();
      current.source = await createSqliteSource({ path: current.db.path, key: current.db.key });
      expect(await current.source.table("exam_eye").get(od.id)).toEqual(od);
      expect(await current.source.table("patients").get(patient.id)).toMatchObject({ phone: "55 2222 3333" });
    });

    it("writes none of the rows that claim one key together (read from the tier at different moments)", async () => {
      const [branch] = await stored("branches", [fixtures.branch()]);
      const [a, b] = await stored("patients", [
        fixtures.patient(branch?.id as string),
        fixtures.patient(branch?.id as string),
      ]);
      if (!a || !b) throw new Error("no patients");
      const images = [newer(a, { document_id: "SHARED-1" }), newer(b, { document_id: "SHARED-1" })];
      const left = await current.source.batch((batch) => batch.putVerbatimSet("patients", images));
      expect(new Map(left.map((row) => [row.id, row.heldBy]))).toEqual(
        new Map([
          [a.id, null],
          [b.id, null],
        ]),
      );
      expect(await current.source.table("patients").get(a.id)).toEqual(a);
    });

    it("leaves a row whose key a row outside the set holds, and one waiting on it; writes the rest", async () => {
      const [branch] = await stored("branches", [fixtures.branch()]);
      const [kept, a, b, c] = await stored(
        "patients",
        Array.from({ length: 4 }, () => fixtures.patient(branch?.id as string)),
      );
      if (!kept || !a || !b || !c) throw new Error("no patients");
      // a takes kept's number (kept is not in the set), b takes a's; c changes alone.
      const images = [
        newer(a, { document_id: kept.document_id }),
        newer(b, { document_id: a.document_id }),
        newer(c, { phone: "55 0000 1111" }),
      ];
      const left = await current.source.batch((batch) => batch.putVerbatimSet("patients", images));
      expect(new Map(left.map((row) => [row.id, row.heldBy]))).toEqual(
        new Map([
          [a.id, kept.id],
          [b.id, null],
        ]),
      );
      expect(await current.source.table("patients").get(a.id)).toEqual(a);
      expect(await current.source.table("patients").get(b.id)).toEqual(b);
      expect(await current.source.table("patients").get(c.id)).toEqual(images[2]);
    });
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
