import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type NewRow, type TableName, tables } from "../src/tables/index.js";
import { parseListQuery, parseNewRow, parseRowPatch } from "../src/validate.js";
import { clinicRows } from "./support/ehr-fixtures.js";
import { probeInsert } from "./support/insert-probe.js";
import { createTestDatabase, type TestDatabase } from "./support/test-database.js";

/*
 * zod rejects a bad row before anything is written, naming the field, and rejects exactly what
 * PostgreSQL's CHECKs reject: each case below is fed to both.
 */

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase("cv_validation");
});
afterAll(async () => {
  await db?.drop();
});

function issuePaths(table: TableName, row: unknown): string[] {
  const result = tables[table].writeSchema.safeParse(row);
  return result.success ? [] : result.error.issues.map((issue) => issue.path.join("."));
}

const valid = clinicRows();
const withChange = (table: TableName, change: Record<string, unknown>) => ({ ...valid[table], ...change });

type Case = [table: TableName, column: string, value: unknown];

const REJECTED: Case[] = [
  ["branches", "code", "cdmx-1"],
  ["branches", "code", "X"],
  ["branches", "name", "   "],
  ["branches", "phone", "llamar"],
  ["branches", "timezone", "Mexico City"],
  ["rooms", "kind", "garage"],
  ["profiles", "email", "Lucia@Example.mx"],
  ["profiles", "email", "lucia.example.mx"],
  ["profiles", "full_name", ""],
  ["user_roles", "role", "janitor"],
  ["patients", "document_id", "ab c"],
  ["patients", "birth_date", "1899-12-31"],
  ["patients", "birth_date", "2023-02-29"],
  ["patients", "sex", "m"],
  ["patients", "phone", "123"],
  ["patients", "second_last_name", " "],
  ["appointments", "status", "late"],
  ["appointments", "type", "checkup"],
  ["appointments", "ends_at", "2025-03-03T08:59:59.999-06:00"],
  ["encounters", "ended_at", "2025-03-03T09:01:59.999-06:00"],
  ["encounters", "status", "closed"],
  ["exam_eye", "eye", "OU"],
  ["exam_eye", "uncorrected_va", "20/0"],
  ["exam_eye", "uncorrected_va", "6/6"],
  ["exam_eye", "best_corrected_va", "20/40-5"],
  ["exam_eye", "uncorrected_va_logmar", 3.1],
  ["exam_eye", "best_corrected_va_logmar", -0.4],
  ["exam_eye", "iop_mmhg", 80.5],
  ["exam_eye", "iop_mmhg", -1],
  ["exam_eye", "iop_method", "palpation"],
  ["exam_eye", "refraction_sphere", 30.25],
  ["exam_eye", "refraction_sphere", 1.3],
  ["exam_eye", "refraction_cylinder", -15.25],
  ["exam_eye", "refraction_axis", 181],
  ["exam_eye", "refraction_axis", 1.5],
  ["exam_eye", "refraction_axis", null],
  ["exam_eye", "refraction_add", 4.25],
  ["exam_eye", "refraction_add", 0.1],
  ["diagnoses", "icd10_code", "H40.1.2"],
  ["diagnoses", "icd10_code", "U07.1"],
  ["diagnoses", "icd10_code", "h40.1"],
  ["diagnoses", "icd10_code", "H4"],
  ["diagnoses", "eye", "both"],
  // NUL: PostgreSQL's text cannot hold it, SQLite's can (a PC's offline outbox would then be stuck).
  ["branches", "name", "Cl\u0000nica Sur"],
  ["patients", "notes", "\u0000"],
  ["profiles", "email", "lucia\u0000@example.mx"],
  ["encounters", "assessment", "Glaucoma\u0000"],
];

const ACCEPTED: Case[] = [
  ["branches", "timezone", "UTC"],
  ["branches", "phone", null],
  ["patients", "birth_date", "1900-01-01"],
  ["patients", "document_id", null],
  ["exam_eye", "uncorrected_va", "CF"],
  ["exam_eye", "uncorrected_va", "NLP"],
  ["exam_eye", "best_corrected_va", "20/400"],
  ["exam_eye", "iop_mmhg", 0],
  ["exam_eye", "iop_mmhg", 80],
  ["exam_eye", "refraction_sphere", -30],
  ["exam_eye", "refraction_cylinder", 0],
  ["exam_eye", "refraction_axis", 180],
  ["exam_eye", "refraction_add", 4],
  ["diagnoses", "icd10_code", "H25.9"],
  ["diagnoses", "icd10_code", "H40"],
  ["diagnoses", "icd10_code", "H40.1134"],
  ["diagnoses", "eye", null],
];

describe("zod and PostgreSQL reject the same values", () => {
  it.each(REJECTED)("%s.%s = %j", async (table, column, value) => {
    expect(issuePaths(table, withChange(table, { [column]: value }))).toContain(column);
    const error = await probeInsert(db.sql, table, { [column]: value });
    // 23514 CHECK, 22P02 bad enum/integer text, 22003 numeric overflow, 22008 bad date, 22021 NUL.
    expect(error?.code, `PostgreSQL accepted ${table}.${column} = ${JSON.stringify(value)}`).toMatch(
      /^(23514|22P02|22003|22008|22021)$/,
    );
    if (error?.code === "23514") expect(error.constraint).toMatch(new RegExp(`^${table}_`));
  });

  it.each(ACCEPTED)("both accept %s.%s = %j", async (table, column, value) => {
    expect(issuePaths(table, withChange(table, { [column]: value }))).toEqual([]);
    expect(await probeInsert(db.sql, table, { [column]: value })).toBeUndefined();
  });

  it.each([
    ["iop_mmhg", 15.25],
    ["uncorrected_va_logmar", 0.123],
  ])("zod refuses exam_eye.%s = %s, which PostgreSQL would round silently", async (column, value) => {
    expect(issuePaths("exam_eye", withChange("exam_eye", { [column]: value }))).toEqual([column]);
    expect(await probeInsert(db.sql, "exam_eye", { [column]: value })).toBeUndefined();
  });
});

describe("writeSchema", () => {
  it("accepts every fixture row", () => {
    for (const table of Object.keys(valid) as TableName[]) {
      expect(issuePaths(table, valid[table]), table).toEqual([]);
    }
  });

  it("names the field of a bad uuid, a missing field, a wrong type, a bad IOP and a bad ICD-10 code", () => {
    expect(issuePaths("patients", withChange("patients", { id: "not-a-uuid" }))).toEqual(["id"]);
    expect(issuePaths("patients", withChange("patients", { branch_id: "1234" }))).toEqual(["branch_id"]);
    const { first_name: _omitted, ...withoutName } = valid.patients;
    expect(issuePaths("patients", withoutName)).toEqual(["first_name"]);
    expect(issuePaths("patients", withChange("patients", { birth_date: 19500131 }))).toEqual(["birth_date"]);
    expect(issuePaths("exam_eye", withChange("exam_eye", { iop_mmhg: "24.5" }))).toEqual(["iop_mmhg"]);
    expect(issuePaths("exam_eye", withChange("exam_eye", { iop_mmhg: 95 }))).toEqual(["iop_mmhg"]);
    expect(issuePaths("diagnoses", withChange("diagnoses", { icd10_code: "H40-1" }))).toEqual(["icd10_code"]);
  });

  it("reports every problem at once and refuses unknown columns", () => {
    const result = tables.patients.writeSchema.safeParse(
      withChange("patients", { sex: "x", phone: 5512345678, frist_name: "José" }),
    );
    expect(result.error?.issues.map((issue) => issue.code)).toEqual(
      expect.arrayContaining(["invalid_value", "invalid_type", "unrecognized_keys"]),
    );
    expect(result.error?.issues.map((issue) => issue.path.join("."))).toEqual(
      expect.arrayContaining(["sex", "phone"]),
    );
  });

  it("lets the database fill defaults and NULLs, and never the id", () => {
    const { status: _s, checked_in_at: _c, notes: _n, ...minimal } = valid.appointments;
    expect(issuePaths("appointments", minimal)).toEqual([]);
    const { id: _id, ...withoutId } = valid.appointments;
    expect(issuePaths("appointments", withoutId)).toEqual(["id"]);
    expect(issuePaths("appointments", withChange("appointments", { status: null }))).toEqual(["status"]);
  });

  it("checks multi-column rules with omitted columns read as NULL", () => {
    const { refraction_axis: _axis, ...withoutAxis } = valid.exam_eye;
    expect(issuePaths("exam_eye", withoutAxis)).toEqual(["refraction_axis"]);
    expect(issuePaths("exam_eye", { ...withoutAxis, refraction_cylinder: 0 })).toEqual([]);
  });

  it("returns canonical values: lowercase uuids, UTC millisecond timestamps", () => {
    const row: NewRow<"appointments"> = {
      ...valid.appointments,
      id: "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
      starts_at: "2025-03-03T09:00:00-06:00",
      ends_at: "2025-03-03T15:30:00.1234Z",
    };
    const parsed = tables.appointments.writeSchema.parse(row);
    expect(parsed.id).toBe("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
    expect(parsed.starts_at).toBe("2025-03-03T15:00:00.000Z");
    expect(parsed.ends_at).toBe("2025-03-03T15:30:00.123Z");
  });
});

describe("text columns", () => {
  const NUL = /^must not contain the NUL character \(U\+0000\), which no server can store: remove it/;
  const textColumns = (Object.keys(tables) as TableName[]).flatMap((table) =>
    Object.entries(tables[table].columnTypes)
      .filter(([, type]) => type === "text")
      .map(([column]) => [table, column] as const),
  );

  it("every one refuses NUL as invalid_input, in a row, a patch and a query, saying what to do", () => {
    // Includes the patterned ones (codes, phones, e-mails, Snellen, ICD-10) and the nullable ones.
    expect(textColumns.length).toBeGreaterThan(25);
    for (const [table, column] of textColumns) {
      const value = `${(valid[table] as Record<string, unknown>)[column] ?? "Ojo derecho"}\u0000`;
      for (const parse of [
        () => parseNewRow(table, withChange(table, { [column]: value })),
        () => parseRowPatch(table, { [column]: value }),
        () => parseListQuery(table, { where: { [column]: { in: ["x", value] } } }),
      ]) {
        let thrown: unknown;
        try {
          parse();
        } catch (error) {
          thrown = error;
        }
        expect(thrown, `${table}.${column}`).toMatchObject({
          code: "invalid_input",
          issues: expect.arrayContaining([
            {
              path: expect.stringMatching(new RegExp(`^(where\\.)?${column}(\\.in\\.1)?$`)),
              message: expect.stringMatching(NUL),
            },
          ]),
        });
      }
    }
  });
});

describe("patchSchema", () => {
  const patchPaths = (table: TableName, patch: unknown) => {
    const result = tables[table].patchSchema.safeParse(patch);
    return result.success ? [] : result.error.issues.map((issue) => issue.path.join(".") || issue.code);
  };

  it("accepts any writable column, alone", () => {
    expect(patchPaths("exam_eye", { iop_mmhg: 21 })).toEqual([]);
    expect(patchPaths("appointments", { status: "cancelled", version: valid.exam_eye.id })).toEqual([]);
  });

  it("refuses id, created_at, base_version, unknown columns and empty patches", () => {
    for (const column of ["id", "created_at", "base_version", "frist_name"]) {
      expect(patchPaths("patients", { [column]: valid.patients.id }), column).toEqual(["unrecognized_keys"]);
    }
    expect(patchPaths("patients", {})).toEqual(["custom"]);
  });

  it("checks a multi-column rule only when the patch carries all its columns", () => {
    expect(
      patchPaths("appointments", { starts_at: "2025-03-03T10:00:00Z", ends_at: "2025-03-03T09:00:00Z" }),
    ).toEqual(["ends_at"]);
    expect(patchPaths("appointments", { ends_at: "2025-03-03T09:00:00Z" })).toEqual([]);
  });
});

describe("rowSchema", () => {
  it("reads back what PostgreSQL stored, in canonical form", async () => {
    const rows = clinicRows();
    for (const table of Object.keys(rows) as TableName[]) {
      await db.sql`insert into ${db.sql(table)} ${db.sql(rows[table] as Record<string, string>)}`;
    }
    const [stored] = await db.sql<{ row: unknown }[]>`
      select to_jsonb(t) as row from exam_eye t where id = ${rows.exam_eye.id}`;
    const row = tables.exam_eye.rowSchema.parse(stored?.row);
    expect(row).toMatchObject({ ...rows.exam_eye, base_version: null });
    expect(row.created_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);

    const [appointment] = await db.sql<{ row: unknown }[]>`
      select to_jsonb(t) as row from appointments t where id = ${rows.appointments.id}`;
    expect(tables.appointments.rowSchema.parse(appointment?.row)).toMatchObject({
      starts_at: "2025-03-03T15:00:00.000Z",
      status: "checked_in",
      notes: null,
    });
  });

  it("requires every column, nulls included", () => {
    const result = tables.branches.rowSchema.safeParse({ ...valid.branches, active: true });
    expect(result.error?.issues.map((issue) => issue.path.join("."))).toEqual(
      expect.arrayContaining(["created_at", "updated_at", "version", "base_version"]),
    );
  });
});
