import { randomUUID } from "node:crypto";
import { TABLE_NAMES, tables } from "@centrovision/core";
import { createFixtures } from "@centrovision/testkit/contract";
import { describe, expect, it } from "vitest";
import { createSqliteSource, openSqliteReadOnly } from "../src/index.js";
import { failure, readStoredRow, tempDatabase, useTempSource } from "./support/temp-database.js";

const fixtures = createFixtures();

describe("PostgreSQL semantics on SQLite", () => {
  const current = useTempSource();

  it("generates the schema from the core definitions: columns, NOT NULL, foreign keys, uniques", async () => {
    const reader = await openSqliteReadOnly(current.db.path, current.db.key);
    try {
      for (const table of TABLE_NAMES) {
        const def = tables[table];
        const info = reader.all(`PRAGMA table_info("${table}")`);
        expect(
          info.map((c) => c.name),
          table,
        ).toEqual(def.columns);
        const shape = def.rowSchema.shape as Record<string, { safeParse(v: unknown): { success: boolean } }>;
        for (const column of info) {
          const nullable = shape[String(column.name)]?.safeParse(null).success ?? false;
          expect(column.notnull === 1 || column.pk === 1, `${table}.${column.name}`).toBe(!nullable);
        }
        const fks = reader
          .all(`PRAGMA foreign_key_list("${table}")`)
          .map((fk) => [fk.from, fk.table, fk.on_delete]);
        const expected = def.foreignKeys.map((fk) => [fk.column, fk.references, fk.onDelete.toUpperCase()]);
        expect(fks.sort(), table).toEqual(expected.sort());
        const uniques = reader
          .all(`PRAGMA index_list("${table}")`)
          .filter((index) => index.unique === 1 && index.origin === "u")
          .map((index) => reader.all(`PRAGMA index_info("${index.name}")`).map((c) => c.name));
        expect(uniques.sort(), table).toEqual(def.uniques.map((u) => [...u]).sort());
      }
    } finally {
      reader.close();
    }
  });

  it("orders and compares enums by declaration order, as PostgreSQL ENUMs do", async () => {
    const seeded = await current.source.table("branches").insert(fixtures.branch());
    const patient = await current.source.table("patients").insert(fixtures.patient(seeded.id));
    const ids = { branchId: seeded.id, patientId: patient.id };
    for (const status of ["cancelled", "scheduled", "confirmed"] as const) {
      await current.source.table("appointments").insert(fixtures.appointment(ids, { status }));
    }
    const repo = current.source.table("appointments");
    const ordered = await repo.list({ orderBy: [{ column: "status" }] });
    expect(ordered.map((row) => row.status)).toEqual(["scheduled", "confirmed", "cancelled"]);
    const later = await repo.list({ where: { status: { gt: "confirmed" } } });
    expect(later.map((row) => row.status)).toEqual(["cancelled"]);
  });

  it("rejects filter values the column type cannot hold, naming the operand", async () => {
    const repo = current.source.table("appointments");
    const cases: [object, string][] = [
      [{ starts_at: { gte: "mañana" } }, "where.starts_at.gte"],
      [{ status: "robot" }, "where.status"],
      [{ patient_id: { in: [randomUUID(), "x"] } }, "where.patient_id.in.1"],
      [{ starts_at: 5 }, "where.starts_at"],
    ];
    for (const [where, path] of cases) {
      const error = await failure(repo.list({ where } as never));
      expect(error.code).toBe("invalid_input");
      expect(error.issues.map((issue) => issue.path)).toEqual([path]);
    }
    const branch = await current.source.table("branches").insert(fixtures.branch());
    expect(await current.source.table("branches").list({ where: { id: branch.id.toUpperCase() } })).toEqual([
      branch,
    ]);
  });

  it("names the constraint a write broke, as PostgreSQL does", async () => {
    const seeded: Record<string, { id: string }> = {};
    for (const [table, row] of Object.entries(fixtures.clinic())) {
      seeded[table] = await current.source.table(table as "branches").insert(row as never);
    }
    const patient = seeded.patients as { id: string; document_id: string; branch_id: string };
    const twin = fixtures.patient(patient.branch_id, { document_id: patient.document_id });
    expect((await failure(current.source.table("patients").insert(twin))).constraint).toBe(
      "patients_branch_id_document_id_key",
    );
    expect(
      (await failure(current.source.table("patients").insert(fixtures.patient(randomUUID())))).constraint,
    ).toBe("patients_branch_id_fkey");
    expect((await failure(current.source.table("patients").delete(patient.id))).constraint).toBe(
      "appointments_patient_id_fkey",
    );
    const appointment = seeded.appointments as { id: string };
    const late = await failure(
      current.source.table("appointments").update(appointment.id, { ends_at: "2020-01-01T00:00:00Z" }),
    );
    expect([late.code, late.constraint]).toEqual(["constraint", "appointments_ends_after_start"]);
  });

  it("re-stamps rows changed by ON DELETE SET NULL, as the cv_touch_row trigger does", async () => {
    const branch = await current.source.table("branches").insert(fixtures.branch());
    const room = await current.source.table("rooms").insert(fixtures.room(branch.id));
    const patient = await current.source.table("patients").insert(fixtures.patient(branch.id));
    const before = await current.source
      .table("appointments")
      .insert(fixtures.appointment({ branchId: branch.id, patientId: patient.id, roomId: room.id }));
    expect(await current.source.table("rooms").delete(room.id)).toBe(true);
    const after = await current.source.table("appointments").get(before.id);
    expect(after).toMatchObject({
      room_id: null,
      base_version: before.version,
      created_at: before.created_at,
    });
    expect(after?.version).not.toBe(before.version);
    expect(
      tables.appointments.rowSchema.parse(
        await readStoredRow(current.db.path, current.db.key, "appointments", before.id),
      ),
    ).toEqual(after);
  });

  it("keeps a version the writer chose, and chains base_version", async () => {
    const branch = await current.source.table("branches").insert(fixtures.branch());
    const chosen = randomUUID();
    const next = await current.source
      .table("branches")
      .update(branch.id, { name: "Sucursal Norte", version: chosen });
    expect([next.version, next.base_version]).toEqual([chosen, branch.version]);
    const again = await current.source
      .table("branches")
      .update(branch.id, { name: "Sucursal Sur", version: chosen });
    expect(again.version).not.toBe(chosen);
  });

  it("drops a write whose deadline passed while it waited for the writer", async () => {
    const branch = await current.source.table("branches").insert(fixtures.branch());
    const batch = Array.from({ length: 3_000 }, () => fixtures.patient(branch.id, { document_id: null }));
    const busy = current.source.table("patients").upsertMany(batch, { timeoutMs: 60_000 });
    const late = fixtures.patient(branch.id);
    expect((await failure(current.source.table("patients").insert(late, { timeoutMs: 1 }))).code).toBe(
      "timeout",
    );
    await busy;
    await current.source.table("patients").list({ limit: 1 });
    expect(await current.source.table("patients").get(late.id)).toBeNull();
  });

  it("survives close and reopen with identical rows", async () => {
    const branch = await current.source.table("branches").insert(fixtures.branch({ active: false }));
    await current.source.close();
    current.source = await createSqliteSource({ path: current.db.path, key: current.db.key });
    expect(await current.source.table("branches").get(branch.id)).toEqual(branch);
    // close() folded the journal into the snapshot: nothing left to replay.
    expect(current.source.recovery).toEqual({ replayedRecords: 0, discardedTail: null });
  });
});

describe("config", () => {
  it("lists every problem with its path, without echoing the key", async () => {
    const key = new Uint8Array(16).fill(0xab);
    const error = await failure(createSqliteSource({ path: "", key, timeoutMs: -1, extra: true } as never));
    expect(error.code).toBe("invalid_config");
    expect(error.issues.map((issue) => issue.path).sort()).toEqual(["extra", "key", "path", "timeoutMs"]);
    expect(error.message).not.toMatch(/171|ab,ab|abab/i);
  });

  it("accepts an AES-GCM CryptoKey and refuses any other kind of key", async () => {
    const db = await tempDatabase();
    try {
      const aes = await crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, false, [
        "encrypt",
        "decrypt",
      ]);
      const source = await createSqliteSource({ path: db.path, key: aes });
      await source.close();
      const cbc = await crypto.subtle.generateKey({ name: "AES-CBC", length: 256 }, false, [
        "encrypt",
        "decrypt",
      ]);
      const error = await failure(createSqliteSource({ path: db.path, key: cbc }));
      expect([error.code, error.issues.map((issue) => issue.path)]).toEqual(["invalid_config", ["key"]]);
    } finally {
      await db.remove();
    }
  });
});
