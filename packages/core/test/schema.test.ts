import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as z from "zod";
import { SYNCED_TABLES, TABLE_NAMES, type TableName, tables } from "../src/tables/index.js";
import { type Catalog, type DbColumn, readCatalog } from "./support/catalog.js";
import { type ComparedDefinition, schemaMismatches } from "./support/schema-agreement.js";
import { createTestDatabase, type TestDatabase } from "./support/test-database.js";

/*
 * The zod definitions in src/tables/ and the migrations in sql/ describe the same ten tables.
 * This file proves it against a real PostgreSQL: same columns, types, nullability, defaults,
 * foreign keys and unique constraints, in both directions.
 */

let db: TestDatabase;
let catalog: Catalog;
/** `table.column` → the column's SQL DEFAULT evaluated by PostgreSQL (constant defaults only). */
const defaultValues = new Map<string, unknown>();

beforeAll(async () => {
  db = await createTestDatabase("cv_schema");
  catalog = await readCatalog(db.sql);
  for (const column of catalog.columns) {
    if (column.default_expr === null || !/^('.*'::[\w." ]+|true|false|-?[\d.]+)$/.test(column.default_expr))
      continue;
    const [row] = await db.sql.unsafe<{ value: unknown }[]>(
      `select to_jsonb(${column.default_expr}) as value`,
    );
    defaultValues.set(`${column.table}.${column.column}`, row?.value);
  }
});

afterAll(async () => {
  await db?.drop();
});

describe("zod definitions agree with sql/", () => {
  it.each(TABLE_NAMES)("%s", (name) => {
    expect(schemaMismatches(tables[name], catalog, defaultValues)).toEqual([]);
  });

  it("would notice a column only the database has, or only zod has", () => {
    const def = tables.exam_eye as ComparedDefinition;
    const pinhole: DbColumn = {
      table: "exam_eye",
      column: "va_pinhole",
      type: "text",
      typtype: "b",
      enum_values: null,
      not_null: false,
      default_expr: null,
      generated: "",
      identity: "",
    };
    const extraInDb = { ...catalog, columns: [...catalog.columns, pinhole] };
    expect(schemaMismatches(def, extraInDb, defaultValues)).toContain(
      "exam_eye.va_pinhole: in the database, not in zod",
    );

    const rowSchema = z.object({ ...def.rowSchema.shape, va_pinhole: z.string() });
    expect(schemaMismatches({ ...def, rowSchema }, catalog, defaultValues)).toContain(
      "exam_eye.va_pinhole: in zod, not in the database",
    );
  });

  it("would notice a different enum order, nullability or ON DELETE", () => {
    const def = tables.diagnoses as ComparedDefinition;
    const rowSchema = z.object({
      ...def.rowSchema.shape,
      status: z.enum(["resolved", "active", "ruled_out"]),
      description: z.string().nullable(),
    });
    const foreignKeys = def.foreignKeys.map((fk) => ({ ...fk, onDelete: "cascade" as const }));
    const problems = schemaMismatches({ ...def, rowSchema, foreignKeys }, catalog, defaultValues);
    expect(problems.some((p) => p.startsWith("diagnoses.status: enum"))).toBe(true);
    expect(problems.some((p) => p.startsWith("diagnoses.description: NOT NULL"))).toBe(true);
    expect(problems.some((p) => p.startsWith("diagnoses: foreign keys"))).toBe(true);
  });
});

describe("table order", () => {
  const position = (name: TableName) => TABLE_NAMES.indexOf(name);

  it("lists parents before children", () => {
    for (const name of TABLE_NAMES) {
      for (const fk of tables[name].foreignKeys) {
        expect(position(fk.references), `${name}.${fk.column} → ${fk.references}`).toBeLessThan(
          position(name),
        );
      }
    }
  });

  it("declares every synced table once, in the same order", () => {
    expect(new Set(SYNCED_TABLES).size).toBe(SYNCED_TABLES.length);
    const positions = SYNCED_TABLES.map(position);
    expect(positions.every((p) => p >= 0)).toBe(true);
    expect([...positions].sort((a, b) => a - b)).toEqual(positions);
  });

  it("names each definition after its key", () => {
    for (const name of TABLE_NAMES) expect(tables[name].name).toBe(name);
  });
});

describe("constraint names", () => {
  it("name each CHECK after its column, or appear in the definition's checks", () => {
    const unnamed = catalog.checks
      .filter((check) => (TABLE_NAMES as readonly string[]).includes(check.table))
      .filter((check) => {
        const def = tables[check.table as TableName];
        const declared = def.checks.some((rule) => rule.constraint === check.name);
        return !declared && !def.columns.some((column) => check.name.startsWith(`${def.name}_${column}_`));
      });
    expect(unnamed).toEqual([]);
  });
});

describe("indexes", () => {
  it("index every foreign key column, so deletes and joins do not scan the child table", () => {
    const missing = TABLE_NAMES.flatMap((name) =>
      tables[name].foreignKeys
        .filter(
          (fk) => !catalog.indexes.some((index) => index.table === name && index.columns[0] === fk.column),
        )
        .map((fk) => `${name}.${fk.column}`),
    );
    expect(missing).toEqual([]);
  });

  it("find patients by surname prefix regardless of accents and case", async () => {
    const { sql } = db;
    const [plan] = await sql.begin(async (tx) => {
      await tx`set local enable_seqscan = off`;
      return tx.unsafe<{ "QUERY PLAN": string }[]>(
        "explain select id from patients where cv_search_fold(last_name) like cv_search_fold('NÚÑ') || '%'",
      );
    });
    expect(plan?.["QUERY PLAN"]).toMatch(/patients_name_search_idx/);
    const [folded] = await sql<{ value: string }[]>`select cv_search_fold('José Ñúñez ÁLVAREZ') as value`;
    expect(folded?.value).toBe("jose nunez alvarez");
  });
});
