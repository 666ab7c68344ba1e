import * as z from "zod";
import { rowMetaShape, writeMetaShape } from "./columns.js";
import type { TableName } from "./table-names.js";

/** A table's own columns (after the shared meta columns), in column order. */
export type ColumnShape = Record<string, z.ZodType>;

/** The SQL type family a column stores; read by sources that must create or convert columns. */
export type ColumnType =
  | "uuid"
  | "text"
  | "timestamptz"
  | "date"
  | "numeric"
  | "integer"
  | "boolean"
  | "enum";

/** Constant SQL `DEFAULT`s of a table's own columns, as values a non-SQL source can copy. */
export type Defaults<C extends ColumnShape> = { readonly [K in keyof C]?: z.output<C[K]> };

type ColumnValues<C extends ColumnShape> = { [K in keyof C]: z.output<C[K]> };
type Flatten<T> = { [K in keyof T]: T[K] };

/** A foreign key; it always references the `id` of `references`. */
export interface ForeignKey<Column extends string = string> {
  readonly column: Column;
  readonly references: TableName;
  readonly onDelete: "cascade" | "restrict" | "set null";
}

/**
 * A rule across several columns, enforced in SQL by the CHECK named `constraint`.
 * Like SQL, `valid` must return true when a value it compares is null.
 */
export interface RowCheck<C extends ColumnShape = ColumnShape> {
  readonly constraint: string;
  /** The columns `valid` reads; the rule is only evaluated when all are present. */
  readonly columns: readonly (keyof C & string)[];
  /** The column an error is reported on. */
  readonly field: keyof C & string;
  readonly message: string;
  valid(row: ColumnValues<C>): boolean;
}

export type RowShape<C extends ColumnShape> = Flatten<typeof rowMetaShape & C>;

/** Own columns as written: optional when the database fills them (a DEFAULT, or NULL when nullable). */
export type WriteShape<C extends ColumnShape, D extends Defaults<C>> = Flatten<
  typeof writeMetaShape & {
    [K in keyof C]: K extends keyof D
      ? z.ZodOptional<C[K]>
      : C[K] extends z.ZodNullable<z.ZodType>
        ? z.ZodOptional<C[K]>
        : C[K];
  }
>;

export type PatchShape<C extends ColumnShape> = Flatten<
  Pick<typeof writeMetaShape, "updated_at" | "version"> & { [K in keyof C]: z.ZodOptional<C[K]> }
>;

/**
 * One table, defined once. Every source validates with these schemas and every SQL migration
 * agrees with them (proved by test/schema.test.ts against PostgreSQL).
 */
export interface TableDefinition<
  N extends TableName = TableName,
  C extends ColumnShape = ColumnShape,
  D extends Defaults<C> = Record<never, never>,
> {
  readonly name: N;
  /**
   * A stored row as every source returns it: all columns present, NULL as `null`, values in
   * canonical form (lowercase uuids, UTC millisecond timestamps, numbers). Unknown keys are dropped.
   */
  readonly rowSchema: z.ZodObject<RowShape<C>>;
  /**
   * What a caller sends to insert or upsert: `id` required (made by the writer, so a retry on
   * another tier is idempotent); optional exactly where the database supplies a value —
   * `created_at`, `updated_at`, `version`, `base_version`, `created_by`, `updated_by`, columns
   * with a DEFAULT (see {@link defaults}) and nullable columns (NULL). Unknown keys are rejected.
   */
  readonly writeSchema: z.ZodObject<WriteShape<C, D>, z.core.$strict>;
  /**
   * An update: any writable column except `id`, `created_at`, `base_version`, `created_by` and
   * `updated_by` (the database's), at least one.
   * Multi-column rules are checked when the patch carries all their columns; the database
   * checks the rest against the stored row.
   */
  readonly patchSchema: z.ZodObject<PatchShape<C>, z.core.$strict>;
  /** Column names in table order. */
  readonly columns: readonly (keyof RowShape<C> & string)[];
  /** Each column's SQL type family, derived from its zod schema (e.g. SQLite stores booleans as 0/1). */
  readonly columnTypes: { readonly [K in keyof RowShape<C>]: ColumnType };
  /**
   * Constant defaults a source without SQL must apply to omitted columns. Omitted nullable
   * columns become `null`; `created_at`/`updated_at` become now and `version` a random uuid.
   */
  readonly defaults: D;
  readonly foreignKeys: readonly ForeignKey<keyof C & string>[];
  /** Unique constraints besides the primary key `id`, columns in constraint order. */
  readonly uniques: readonly (readonly (keyof C & string)[])[];
  readonly checks: readonly RowCheck<C>[];
}

export interface TableSpec<N extends TableName, C extends ColumnShape, D extends Defaults<C>> {
  readonly name: N;
  readonly columns: C;
  readonly defaults?: D;
  readonly foreignKeys?: readonly ForeignKey<keyof C & string>[];
  readonly uniques?: readonly (readonly (keyof C & string)[])[];
  readonly checks?: readonly RowCheck<C>[];
}

function mapShape<S extends ColumnShape, R>(
  shape: S,
  map: (schema: z.ZodType, column: string) => R,
): Record<keyof S, R> {
  return Object.fromEntries(
    Object.entries(shape).map(([column, schema]) => [column, map(schema, column)]),
  ) as Record<keyof S, R>;
}

function columnTypeOf(schema: z.ZodType): ColumnType {
  const inner = schema instanceof z.ZodNullable || schema instanceof z.ZodOptional ? schema.unwrap() : schema;
  if (inner instanceof z.ZodEnum) return "enum";
  if (inner instanceof z.ZodBoolean) return "boolean";
  if (inner instanceof z.ZodNumber) return inner.format === "safeint" ? "integer" : "numeric";
  if (inner instanceof z.ZodStringFormat) {
    if (inner.format === "guid") return "uuid";
    if (inner.format === "datetime") return "timestamptz";
    if (inner.format === "date") return "date";
  }
  if (inner instanceof z.ZodString || inner instanceof z.ZodStringFormat) return "text";
  throw new TypeError(`[core] no SQL column type for a zod "${inner._zod.def.type}" schema`);
}

/**
 * Applies multi-column rules. A whole row (`fill` given) reads an omitted column as the value the
 * database would store — its default, else NULL. A patch only knows the columns it carries, so a
 * rule is skipped unless all of its columns are present; the database checks it against the stored row.
 */
function enforceChecks(checks: readonly RowCheck[], fill?: Readonly<Record<string, unknown>>) {
  return (row: Record<string, unknown>, ctx: z.RefinementCtx) => {
    for (const check of checks) {
      const values: Record<string, unknown> = {};
      for (const column of check.columns) {
        values[column] =
          row[column] !== undefined || fill === undefined ? row[column] : (fill[column] ?? null);
      }
      const present = check.columns.every((column) => values[column] !== undefined);
      if (present && !check.valid(values)) {
        ctx.addIssue({ code: "custom", path: [check.field], message: check.message });
      }
    }
  };
}

/** Builds a table's schemas from its own columns; the meta columns come first in every table. */
export function defineTable<
  const N extends TableName,
  C extends ColumnShape,
  const D extends Defaults<C> = Record<never, never>,
>(spec: TableSpec<N, C, D>): TableDefinition<N, C, D> {
  const { name, columns, foreignKeys = [], uniques = [], checks = [] } = spec;
  const defaults = spec.defaults ?? ({} as D);
  const rowShape = { ...rowMetaShape, ...columns } as RowShape<C>;
  const writeColumns = mapShape(columns, (schema, column) =>
    column in defaults || schema instanceof z.ZodNullable ? schema.optional() : schema,
  );
  const patchShape = {
    updated_at: writeMetaShape.updated_at,
    version: writeMetaShape.version,
    ...mapShape(columns, (schema) => schema.optional()),
  } as PatchShape<C>;
  const rowRules = enforceChecks(checks as readonly RowCheck[], defaults);
  return Object.freeze({
    name,
    rowSchema: z.object(rowShape).superRefine(rowRules),
    writeSchema: z
      .object({ ...writeMetaShape, ...writeColumns } as WriteShape<C, D>)
      .strict()
      .superRefine(rowRules),
    patchSchema: z
      .object(patchShape)
      .strict()
      .refine((patch) => Object.keys(patch).length > 0, {
        message: "a patch must change at least one column",
        // An unknown key is stripped before this runs; reporting "empty" too would mislead.
        when: (payload) => payload.issues.length === 0,
      })
      .superRefine(enforceChecks(checks as readonly RowCheck[])),
    columns: Object.keys(rowShape) as (keyof RowShape<C> & string)[],
    columnTypes: mapShape(rowShape, columnTypeOf),
    defaults,
    foreignKeys,
    uniques,
    checks,
  });
}
