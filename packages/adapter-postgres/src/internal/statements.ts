import { type ListQuery, type TableName, tables } from "@centrovision/core";
import { type Compilable, type ExpressionBuilder, type Kysely, sql } from "kysely";
import { builder } from "./database.js";
import type { Statement } from "./execute.js";
import { applyListQuery } from "./list-query.js";

type AnyRow = Record<string, unknown>;

/**
 * The repositories are generic over the table, which Kysely's inference cannot follow through a
 * type parameter; they build on this widened view of `Database`. Names stay safe: tables come
 * from the `TableName` union and columns from `tables[t].columns` or validated input.
 */
export type LooseDatabase = Record<string, AnyRow>;
const db = builder as unknown as Kysely<LooseDatabase>;

const columnsOf = (table: TableName): readonly string[] => tables[table].columns;

/**
 * The PostgreSQL limit is 65,535 parameters per statement; batches stay well under it, and under
 * a size where one failing row makes a huge statement's error hard to read.
 */
const MAX_BATCH_PARAMETERS = 30_000;
const MAX_BATCH_ROWS = 1_000;

/**
 * Compiled text by statement shape (operation, table, columns). Building and compiling with Kysely
 * took 20–60 µs per write in a running process, a fifth of a local upsert; a shape's text never
 * changes. The cache is bounded: the shapes a client uses are few, and an unusual one just compiles.
 */
const texts = new Map<string, string | null>();
const MAX_SHAPES = 1_000;

/**
 * The statement for `parameters`, compiling `build()` only until a shape's text is known. A text
 * is kept only if its compiled parameters were exactly `parameters`, in order, and all distinct
 * (so equal values cannot hide a different order): a Kysely that orders them otherwise costs
 * speed, never correctness.
 */
function cached(shape: string, parameters: readonly unknown[], build: () => Compilable): Statement {
  const text = texts.get(shape);
  if (typeof text === "string") return { sql: text, parameters };
  const compiled = build().compile();
  const conclusive = new Set(parameters).size === parameters.length;
  if (text === undefined && conclusive && texts.size < MAX_SHAPES) {
    const same =
      compiled.parameters.length === parameters.length &&
      compiled.parameters.every((value, i) => value === parameters[i]);
    texts.set(shape, same ? compiled.sql : null);
  }
  return compiled;
}

export function selectById(table: TableName, id: string): Statement {
  return cached(`get ${table}`, [id], () =>
    db.selectFrom(table).select(columnsOf(table)).where("id", "=", id),
  );
}

export function selectList(table: TableName, query: ListQuery<AnyRow>): Statement {
  return applyListQuery(db.selectFrom(table).select(columnsOf(table)), table, query).compile();
}

export function exists(table: TableName, id: string): Statement {
  return cached(`exists ${table}`, [id], () =>
    db.selectFrom(table).select(sql<number>`1`.as("one")).where("id", "=", id),
  );
}

export function insert(table: TableName, row: AnyRow): Statement {
  const keys = Object.keys(row);
  return cached(`insert ${table} ${keys}`, Object.values(row), () =>
    db.insertInto(table).values(row).returning(columnsOf(table)),
  );
}

/**
 * `INSERT … ON CONFLICT (id) DO UPDATE` that overwrites only the columns the rows carry (all rows
 * carry the same ones, see {@link upsertBatches}); the `cv_touch_row` trigger keeps `created_at`
 * and chains `version`/`base_version`, exactly as for an update.
 */
export function upsert(table: TableName, rows: readonly AnyRow[]): Statement {
  const keys = Object.keys(rows[0] ?? {});
  const given = keys.filter((column) => column !== "id");
  // With nothing to overwrite the row is still touched, as the memory source does: new version.
  const overwritten = given.length > 0 ? given : ["id"];
  const build = () =>
    db
      .insertInto(table)
      .values(rows as AnyRow[])
      .onConflict((conflict) =>
        conflict
          .column("id")
          .doUpdateSet((eb: ExpressionBuilder<LooseDatabase, string>) =>
            Object.fromEntries(overwritten.map((column) => [column, eb.ref(`excluded.${column}`)])),
          ),
      )
      .returning(columnsOf(table));
  // A batch is a one-off shape; only the single-row upsert is worth remembering.
  const [row] = rows;
  return rows.length === 1 && row !== undefined
    ? cached(`upsert ${table} ${keys}`, Object.values(row), build)
    : build().compile();
}

/** `UPDATE … WHERE id [AND version = expected] RETURNING`. Zero rows means missing or stale. */
export function update(table: TableName, id: string, values: AnyRow, expectedVersion?: string): Statement {
  const parameters = [
    ...Object.values(values),
    id,
    ...(expectedVersion === undefined ? [] : [expectedVersion]),
  ];
  return cached(`update ${table} ${Object.keys(values)} ${expectedVersion !== undefined}`, parameters, () => {
    let statement = db.updateTable(table).set(values).where("id", "=", id);
    if (expectedVersion !== undefined) statement = statement.where("version", "=", expectedVersion);
    return statement.returning(columnsOf(table));
  });
}

export function remove(table: TableName, id: string, expectedVersion?: string): Statement {
  const parameters = expectedVersion === undefined ? [id] : [id, expectedVersion];
  return cached(`delete ${table} ${expectedVersion !== undefined}`, parameters, () => {
    let statement = db.deleteFrom(table).where("id", "=", id);
    if (expectedVersion !== undefined) statement = statement.where("version", "=", expectedVersion);
    return statement.returning("id");
  });
}

/**
 * Splits rows into multi-row statements: consecutive rows with the same columns, at most
 * {@link MAX_BATCH_ROWS}, and never one id twice (PostgreSQL refuses to update a row twice in
 * one `ON CONFLICT` statement; a later row of the same id is applied after, as in sequence).
 */
export function upsertBatches(rows: readonly AnyRow[]): AnyRow[][] {
  const batches: AnyRow[][] = [];
  let batch: AnyRow[] = [];
  let signature = "";
  let ids = new Set<unknown>();
  for (const row of rows) {
    const keys = Object.keys(row);
    const next = keys.join(",");
    const full =
      batch.length > 0 &&
      (next !== signature ||
        ids.has(row.id) ||
        batch.length >= MAX_BATCH_ROWS ||
        (batch.length + 1) * keys.length > MAX_BATCH_PARAMETERS);
    if (full) {
      batches.push(batch);
      batch = [];
      ids = new Set();
    }
    signature = next;
    batch.push(row);
    ids.add(row.id);
  }
  if (batch.length > 0) batches.push(batch);
  return batches;
}
