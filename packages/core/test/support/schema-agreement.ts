import * as z from "zod";
import { type ColumnType, ROW_META_COLUMNS, type TableDefinition } from "../../src/tables/index.js";
import type { Catalog, DbColumn } from "./catalog.js";

/** The parts of a table definition the comparison reads (a test can hand in a tampered copy). */
export type ComparedDefinition = Pick<
  TableDefinition,
  | "name"
  | "rowSchema"
  | "writeSchema"
  | "columns"
  | "columnTypes"
  | "defaults"
  | "foreignKeys"
  | "uniques"
  | "checks"
>;

interface JsonSchema {
  type?: string;
  format?: string;
  enum?: unknown[];
  anyOf?: JsonSchema[];
  minimum?: number;
  maximum?: number;
  multipleOf?: number;
}

const ON_DELETE: Record<string, string> = {
  r: "restrict",
  c: "cascade",
  n: "set null",
  a: "no action",
  d: "set default",
};
const INTEGER_LIMITS: Record<string, number> = { smallint: 32767, integer: 2147483647 };
/** Defaults of the meta columns: the only non-constant DEFAULTs allowed. */
const META_DEFAULTS: Record<string, string | null> = {
  id: null,
  created_at: "now()",
  updated_at: "now()",
  version: "gen_random_uuid()",
  base_version: null,
  created_by: null,
  updated_by: null,
};

function sqlTypeOf(column: DbColumn): ColumnType | undefined {
  if (column.typtype === "e") return "enum";
  if (column.type === "uuid") return "uuid";
  if (column.type === "text" || column.type.startsWith("character varying")) return "text";
  // Only millisecond precision: more would not survive a round trip through JavaScript.
  if (column.type === "timestamp(3) with time zone") return "timestamptz";
  if (column.type === "date") return "date";
  // Only with precision and scale, so the zod range can be checked against them.
  if (/^numeric\(\d+,\d+\)$/.test(column.type)) return "numeric";
  if (column.type in INTEGER_LIMITS) return "integer";
  if (column.type === "boolean") return "boolean";
  return undefined;
}

/** The column type zod's own JSON Schema implies, independent of `columnTypes`. */
function zodTypeOf(json: JsonSchema): ColumnType | undefined {
  if (json.enum !== undefined) return "enum";
  if (json.type === "boolean") return "boolean";
  if (json.type === "integer") return "integer";
  if (json.type === "number") return "numeric";
  if (json.type !== "string") return undefined;
  if (json.format === "uuid") return "uuid";
  if (json.format === "date-time") return "timestamptz";
  if (json.format === "date") return "date";
  return "text";
}

/** Problems that would let zod accept a number PostgreSQL rejects or silently rounds. */
function numberProblems(column: DbColumn, json: JsonSchema): string[] {
  const where = `${column.table}.${column.column} (${column.type})`;
  const { minimum, maximum, multipleOf } = json;
  if (minimum === undefined || maximum === undefined) return [`${where}: zod needs min and max`];
  const integerLimit = INTEGER_LIMITS[column.type];
  if (integerLimit !== undefined) {
    return minimum >= -integerLimit - 1 && maximum <= integerLimit
      ? []
      : [`${where}: zod range exceeds the type`];
  }
  const [, precision = 0, scale = 0] = /^numeric\((\d+),(\d+)\)$/.exec(column.type)?.map(Number) ?? [];
  const problems: string[] = [];
  if (Math.max(Math.abs(minimum), Math.abs(maximum)) >= 10 ** (precision - scale)) {
    problems.push(`${where}: zod range [${minimum}, ${maximum}] overflows`);
  }
  const steps = (multipleOf ?? 0) * 10 ** scale;
  if (multipleOf === undefined || Math.abs(steps - Math.round(steps)) > 1e-9) {
    problems.push(`${where}: zod multipleOf ${multipleOf} is finer than the scale, PostgreSQL would round`);
  }
  return problems;
}

function columnProblems(def: ComparedDefinition, column: DbColumn, defaultValue: unknown): string[] {
  const where = `${def.name}.${column.column}`;
  const rowField = def.rowSchema.shape[column.column] as z.ZodType | undefined;
  const writeField = def.writeSchema.shape[column.column] as z.ZodType | undefined;
  if (rowField === undefined || writeField === undefined) return [`${where}: in the database, not in zod`];
  const problems: string[] = [];
  if (column.generated !== "" || column.identity !== "") problems.push(`${where}: generated/identity column`);

  const json = z.toJSONSchema(rowField, { io: "input" }) as JsonSchema;
  const inner = json.anyOf?.find((branch) => branch.type !== "null") ?? json;
  const sqlType = sqlTypeOf(column);
  const zodType = zodTypeOf(inner);
  if (sqlType === undefined) problems.push(`${where}: SQL type ${column.type} has no zod counterpart`);
  else if (sqlType !== zodType) problems.push(`${where}: SQL ${column.type} but zod ${zodType ?? "unknown"}`);
  if (def.columnTypes[column.column] !== zodType)
    problems.push(`${where}: columnTypes disagrees with the schema`);
  if (sqlType === "enum" && JSON.stringify(inner.enum) !== JSON.stringify(column.enum_values)) {
    problems.push(
      `${where}: enum ${JSON.stringify(column.enum_values)} vs zod ${JSON.stringify(inner.enum)}`,
    );
  }
  if (sqlType === "numeric" || sqlType === "integer") problems.push(...numberProblems(column, inner));

  if (rowField.safeParse(null).success === column.not_null) {
    problems.push(
      `${where}: NOT NULL is ${column.not_null} but rowSchema ${column.not_null ? "accepts" : "rejects"} null`,
    );
  }
  // Omitting a column is fine exactly when the database fills it: a DEFAULT, or NULL.
  const fillable = column.default_expr !== null || !column.not_null;
  if (writeField.safeParse(undefined).success !== fillable) {
    problems.push(`${where}: writeSchema ${fillable ? "requires" : "lets callers omit"} it`);
  }

  const isMeta = (ROW_META_COLUMNS as readonly string[]).includes(column.column);
  const declared = (def.defaults as Record<string, unknown>)[column.column];
  if (isMeta && column.default_expr !== META_DEFAULTS[column.column]) {
    problems.push(`${where}: meta column default ${column.default_expr}`);
  } else if (!isMeta && JSON.stringify(declared) !== JSON.stringify(defaultValue)) {
    problems.push(
      `${where}: SQL default ${column.default_expr} but defaults has ${JSON.stringify(declared)}`,
    );
  }
  return problems;
}

/**
 * Everything on which a table's zod definition and the database disagree, in both directions;
 * empty when they agree. `defaultValues` holds each data column's SQL DEFAULT evaluated to JSON.
 */
export function schemaMismatches(
  def: ComparedDefinition,
  catalog: Catalog,
  defaultValues: ReadonlyMap<string, unknown>,
): string[] {
  const name = def.name;
  const columns = catalog.columns.filter((column) => column.table === name);
  if (columns.length === 0) return [`${name}: no such table in the database`];
  const problems = columns.flatMap((column) =>
    columnProblems(def, column, defaultValues.get(`${name}.${column.column}`)),
  );

  const dbNames = new Set(columns.map((column) => column.column));
  for (const key of Object.keys(def.rowSchema.shape)) {
    if (!dbNames.has(key)) problems.push(`${name}.${key}: in zod, not in the database`);
  }
  const sorted = (keys: Iterable<string>) => JSON.stringify([...keys].sort());
  if (JSON.stringify(def.columns) !== JSON.stringify(Object.keys(def.rowSchema.shape))) {
    problems.push(`${name}: columns is not the rowSchema's key order`);
  }
  if (sorted(Object.keys(def.writeSchema.shape)) !== sorted(def.columns)) {
    problems.push(`${name}: writeSchema and rowSchema have different columns`);
  }

  const indexes = catalog.indexes.filter((index) => index.table === name);
  const primary = indexes.find((index) => index.primary);
  if (JSON.stringify(primary?.columns) !== '["id"]') problems.push(`${name}: primary key is not (id)`);
  const dbUniques = indexes
    .filter((index) => index.unique && !index.primary)
    .map((index) =>
      index.partial || index.columns.includes(null) ? `${index.name}: partial/expression` : index.columns,
    );
  const asText = (list: readonly unknown[]) => list.map((entry) => JSON.stringify(entry)).sort();
  if (JSON.stringify(asText(dbUniques)) !== JSON.stringify(asText(def.uniques))) {
    problems.push(
      `${name}: uniques ${JSON.stringify(dbUniques)} in SQL vs ${JSON.stringify(def.uniques)} in zod`,
    );
  }

  const dbForeignKeys = catalog.foreignKeys
    .filter((fk) => fk.table === name)
    .map((fk) =>
      fk.columns.length === 1 && JSON.stringify(fk.ref_columns) === '["id"]'
        ? { column: fk.columns[0], references: fk.references, onDelete: ON_DELETE[fk.on_delete] }
        : { unsupported: `${fk.columns} → ${fk.references}(${fk.ref_columns})` },
    );
  const declaredForeignKeys = def.foreignKeys.map(({ column, references, onDelete }) => ({
    column,
    references,
    onDelete,
  }));
  if (JSON.stringify(asText(dbForeignKeys)) !== JSON.stringify(asText(declaredForeignKeys))) {
    problems.push(
      `${name}: foreign keys ${JSON.stringify(dbForeignKeys)} in SQL vs ${JSON.stringify(declaredForeignKeys)}`,
    );
  }

  const dbChecks = new Set(catalog.checks.filter((check) => check.table === name).map((check) => check.name));
  for (const check of def.checks) {
    if (!dbChecks.has(check.constraint)) problems.push(`${name}: no CHECK named ${check.constraint}`);
  }
  return problems;
}
