import { randomUUID } from "node:crypto";
import { CvError, type DataSource } from "@centrovision/core";
import { createFixtures } from "@centrovision/testkit/contract";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createPostgresSource } from "../src/index.js";
import { PG_TYPES } from "../src/internal/pg-types.js";
import { createTestDatabase, type TestDatabase } from "./support/test-database.js";

// Behaviour beyond the shared contract: what only this adapter does, or does its own way.
const fixtures = createFixtures();
let database: TestDatabase;
let source: DataSource;

beforeAll(async () => {
  database = await createTestDatabase("source");
});

afterAll(async () => {
  await database?.drop();
});

beforeEach(async () => {
  await database.truncate();
  source = createPostgresSource({ url: database.url });
});

afterEach(async () => {
  await source.close();
});

async function rejection(promise: Promise<unknown>): Promise<CvError> {
  const error = await promise.then(
    () => new Error("expected the call to fail"),
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(CvError);
  return error as CvError;
}

describe("writes", () => {
  it("upsert with expectedVersion updates only the version it names; a missing row is a conflict", async () => {
    const repo = source.table("branches");
    const branch = await repo.insert(fixtures.branch());
    const next = await repo.upsert(
      { ...fixtures.branch(), id: branch.id, name: "Sucursal Norte" },
      { expectedVersion: branch.version },
    );
    expect(next).toMatchObject({
      name: "Sucursal Norte",
      base_version: branch.version,
      created_at: branch.created_at,
    });
    const stale = await rejection(
      repo.upsert({ ...fixtures.branch(), id: branch.id }, { expectedVersion: branch.version }),
    );
    expect(stale.code).toBe("conflict");
    const missing = fixtures.branch();
    expect((await rejection(repo.upsert(missing, { expectedVersion: randomUUID() }))).code).toBe("conflict");
    expect(await database.probe.row("branches", missing.id)).toBeNull();
  });

  it("delete with expectedVersion: stale is a conflict, missing is false", async () => {
    const repo = source.table("branches");
    const branch = await repo.insert(fixtures.branch());
    expect((await rejection(repo.delete(branch.id, { expectedVersion: randomUUID() }))).code).toBe(
      "conflict",
    );
    expect(await repo.delete(randomUUID(), { expectedVersion: randomUUID() })).toBe(false);
    expect(await repo.delete(branch.id, { expectedVersion: branch.version })).toBe(true);
  });

  it("upsertMany applies rows in order: the same id twice, and rows with different columns", async () => {
    const branch = await source.table("branches").insert(fixtures.branch());
    const first = fixtures.patient(branch.id, { document_id: null });
    const written = await source
      .table("patients")
      .upsertMany([
        first,
        fixtures.patient(branch.id, { document_id: null, email: "luz@correo.mx" }),
        { ...first, first_name: "Segunda" },
        fixtures.patient(branch.id, { document_id: null }),
      ]);
    expect(written.map((row) => row.first_name)).toEqual([
      "José Ángel",
      "José Ángel",
      "Segunda",
      "José Ángel",
    ]);
    expect(written[2]?.base_version).toBe(written[0]?.version);
    expect((await source.table("patients").get(first.id))?.first_name).toBe("Segunda");
    expect(await database.probe.count("patients")).toBe(3);
  });

  it("constraint errors name the rule and the columns, never the values", async () => {
    const seeded = await source.table("branches").insert(fixtures.branch());
    const patient = await source
      .table("patients")
      .insert(fixtures.patient(seeded.id, { document_id: "CURPSECRET123" }));
    const twin = await rejection(
      source.table("patients").insert(fixtures.patient(seeded.id, { document_id: "CURPSECRET123" })),
    );
    expect(twin).toMatchObject({
      code: "constraint",
      constraint: "patients_branch_id_document_id_key",
      table: "patients",
    });
    expect(twin.message).toBe(
      "[adapter-postgres] patients already has a row with this branch_id, document_id",
    );
    expect(JSON.stringify({ ...twin, cause: twin.cause })).not.toContain("CURPSECRET123");
    const orphan = await rejection(source.table("patients").insert(fixtures.patient(randomUUID())));
    expect(orphan.message).toBe("[adapter-postgres] patients.branch_id references a missing branches row");
    await source
      .table("appointments")
      .insert(fixtures.appointment({ branchId: seeded.id, patientId: patient.id }));
    const referenced = await rejection(source.table("patients").delete(patient.id));
    expect(referenced).toMatchObject({ code: "constraint", constraint: "appointments_patient_id_fkey" });
    expect(referenced.message).toBe(
      "[adapter-postgres] patients row is still referenced by appointments.patient_id",
    );
  });
});

describe("reads", () => {
  it("a long `in` list (more parameters than are worth preparing) works", async () => {
    const branch = await source.table("branches").insert(fixtures.branch());
    const rows = Array.from({ length: 150 }, () => fixtures.patient(branch.id, { document_id: null }));
    await source.table("patients").upsertMany(rows);
    const ids = rows.map((row) => row.id);
    const found = await source.table("patients").list({ where: { id: { in: [...ids, randomUUID()] } } });
    expect(found.map((row) => row.id)).toEqual([...ids].sort());
  });

  it("a server whose rows no longer fit this version's schema is reported, not passed on", async () => {
    await database.sql`alter table branches drop constraint branches_code_format`;
    try {
      const id = randomUUID();
      await database.sql`insert into branches (id, code, name, address) values (${id}, 'not a code', 'x', 'y')`;
      const error = await rejection(source.table("branches").get(id));
      expect(error.code).toBe("unknown");
      expect(error.message).toBe(
        "[adapter-postgres] the clinic server's branches table does not match this version's schema (code); run the migrations",
      );
    } finally {
      await database.sql`delete from branches`;
      await database.sql`alter table branches add constraint branches_code_format check (code ~ '^[A-Z0-9][A-Z0-9-]{1,15}$')`;
    }
  });

  it("an unknown table name (from untyped callers) is invalid_input, never SQL", () => {
    expect(() => source.table("pg_authid" as never)).toThrow(
      expect.objectContaining({ code: "invalid_input" }),
    );
  });

  it("int8 values past 2^53 come back as bigint, not rounded", () => {
    expect(PG_TYPES.int8.parse("9007199254740993")).toBe(9007199254740993n);
    expect(PG_TYPES.int8.parse("42")).toBe(42);
  });

  it("timestamps arrive canonical whatever their precision or offset", () => {
    expect(PG_TYPES.timestamptz.parse("2026-11-30 15:05:00+00")).toBe("2026-11-30T15:05:00.000Z");
    expect(PG_TYPES.timestamptz.parse("2026-11-30 15:05:00.5+00")).toBe("2026-11-30T15:05:00.500Z");
    expect(PG_TYPES.timestamptz.parse("2026-11-30 09:05:00.123-06")).toBe("2026-11-30T15:05:00.123Z");
    expect(PG_TYPES.timestamptz.parse("infinity")).toBe("infinity");
  });
});
