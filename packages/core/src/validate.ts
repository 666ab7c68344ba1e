import type * as z from "zod";
import { CvError, type InputIssue } from "./errors.js";
import type { ListQuery } from "./repository.js";
import { type NewRow, type Row, type RowPatch, type TableName, tables } from "./tables/index.js";

/**
 * One {@link InputIssue} per problem zod found, each with its dotted path. Zod reports unknown keys
 * as one issue on the parent; callers need each offending field named, so they are split.
 */
export function zodIssues(error: z.ZodError, root = "(row)", unknownKey = "unknown column"): InputIssue[] {
  return error.issues.flatMap((issue) => {
    const base = issue.path.map(String);
    if (issue.code === "unrecognized_keys") {
      return issue.keys.map((key) => ({ path: [...base, key].join("."), message: unknownKey }));
    }
    return [{ path: base.join(".") || root, message: issue.message }];
  });
}

/** `path: message; …`, the form every `invalid_input`/`invalid_config` message lists its issues in. */
export function listIssues(issues: readonly InputIssue[]): string {
  return issues.map((issue) => `${issue.path}: ${issue.message}`).join("; ");
}

/**
 * A config's problems: zod's, then the cross-field `extra` ones found on the raw input (zod skips
 * refinements once a field failed, so callers check those again), each listed once.
 */
export function configIssues(
  error: z.ZodError | undefined,
  extra: readonly { readonly path: readonly string[]; readonly message: string }[],
): InputIssue[] {
  const issues = error === undefined ? [] : zodIssues(error, "(config)", "unknown option");
  const seen = new Set(issues.map((issue) => `${issue.path}: ${issue.message}`));
  for (const problem of extra) {
    const issue = { path: problem.path.join("."), message: problem.message };
    const key = `${issue.path}: ${issue.message}`;
    if (!seen.has(key)) {
      seen.add(key);
      issues.push(issue);
    }
  }
  return issues;
}

/**
 * Parses a config or options object once and freezes it, or throws `invalid_config` listing every
 * problem with its path, after `what` (e.g. "[adapter-sqlite] invalid config"). Zod messages
 * describe the expectation, never the value, so no secret reaches a log.
 */
export function parseConfig<S extends z.ZodType>(
  what: string,
  schema: S,
  input: unknown,
): Readonly<z.output<S>> {
  const result = schema.safeParse(input);
  if (result.success) return Object.freeze(result.data);
  const issues = zodIssues(result.error, "(config)", "unknown option");
  throw new CvError("invalid_config", `${what}: ${listIssues(issues)}`, { issues });
}

/**
 * Parses untrusted input with a schema, or throws `invalid_input` naming every
 * offending field. Zod messages describe the expectation, never the received
 * value, so the error is safe to log.
 */
export function parseOrThrow<S extends z.ZodType>(
  schema: S,
  input: unknown,
  what: string,
  table?: string,
): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issues = zodIssues(result.error);
  throw new CvError("invalid_input", `[core] invalid ${what}: ${listIssues(issues)}`, {
    issues,
    ...(table !== undefined && { table }),
  });
}

export function parseNewRow<T extends TableName>(table: T, row: unknown): NewRow<T> {
  return parseOrThrow(tables[table].writeSchema, row, `${table} row`, table) as NewRow<T>;
}

export function parseRowPatch<T extends TableName>(table: T, patch: unknown): RowPatch<T> {
  return parseOrThrow(tables[table].patchSchema, patch, `${table} change`, table) as RowPatch<T>;
}

/** Checks a row coming back from a database, so a schema drift surfaces as an error, not as bad data. */
export function parseStoredRow<T extends TableName>(table: T, row: unknown): Row<T> {
  return parseOrThrow(tables[table].rowSchema, row, `${table} row read from the database`, table) as Row<T>;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Rejects an id that is not a UUID before it reaches a database. */
export function parseId(id: unknown, table: string): string {
  if (typeof id === "string" && UUID.test(id)) return id.toLowerCase();
  throw new CvError("invalid_input", `[core] invalid ${table} id: expected a UUID`, {
    issues: [{ path: "id", message: "expected a UUID" }],
    table,
  });
}

const OPERATORS = new Set(["eq", "neq", "in", "gt", "gte", "lt", "lte", "isNull"]);

function isScalar(value: unknown): boolean {
  return (
    typeof value === "string" ||
    typeof value === "boolean" ||
    (typeof value === "number" && Number.isFinite(value))
  );
}

/**
 * A filter value the column could never hold (a malformed uuid, an unknown enum label) is an
 * input error in every source, as PostgreSQL makes it; otherwise one source would error and
 * another silently return nothing.
 */
function operandIssue(path: string, schema: z.ZodType, operand: unknown): InputIssue[] {
  if (!isScalar(operand)) return [{ path, message: "expected a non-null value" }];
  const result = schema.safeParse(operand);
  return result.success
    ? []
    : [{ path, message: result.error.issues[0]?.message ?? "not a value of this column" }];
}

function filterIssues(column: string, schema: z.ZodType, filter: unknown): InputIssue[] {
  const path = `where.${column}`;
  if (filter === null || filter === undefined) return [];
  if (isScalar(filter)) return operandIssue(path, schema, filter);
  if (typeof filter !== "object" || Array.isArray(filter)) {
    return [{ path, message: "expected a value, null or an operator object" }];
  }
  const issues: InputIssue[] = [];
  for (const [op, operand] of Object.entries(filter)) {
    const opPath = `${path}.${op}`;
    if (!OPERATORS.has(op)) {
      issues.push({ path: opPath, message: `unknown operator; use one of ${[...OPERATORS].join(", ")}` });
    } else if (op === "isNull") {
      if (typeof operand !== "boolean") issues.push({ path: opPath, message: "expected true or false" });
    } else if (op === "in") {
      if (!Array.isArray(operand))
        issues.push({ path: opPath, message: "expected an array of non-null values" });
      else issues.push(...operand.flatMap((item, i) => operandIssue(`${opPath}.${i}`, schema, item)));
    } else {
      issues.push(...operandIssue(opPath, schema, operand));
    }
  }
  return issues;
}

/** Checks a list query against the table's columns before any source translates it. */
export function parseListQuery<T extends TableName>(table: T, query: unknown): ListQuery<Row<T>> {
  if (query === undefined) return {};
  const columns = new Set<string>(tables[table].columns);
  const issues: InputIssue[] = [];
  const q = (query ?? {}) as Record<string, unknown>;
  for (const [column, filter] of Object.entries((q.where ?? {}) as Record<string, unknown>)) {
    if (!columns.has(column)) issues.push({ path: `where.${column}`, message: `unknown column of ${table}` });
    else
      issues.push(
        ...filterIssues(column, tables[table].rowSchema.shape[column as never] as z.ZodType, filter),
      );
  }
  for (const [i, order] of (
    (q.orderBy ?? []) as { column?: unknown; direction?: unknown; nulls?: unknown }[]
  ).entries()) {
    if (!columns.has(String(order?.column)))
      issues.push({ path: `orderBy.${i}.column`, message: `unknown column of ${table}` });
    if (order?.direction !== undefined && order.direction !== "asc" && order.direction !== "desc") {
      issues.push({ path: `orderBy.${i}.direction`, message: 'expected "asc" or "desc"' });
    }
    if (order?.nulls !== undefined && order.nulls !== "first" && order.nulls !== "last") {
      issues.push({ path: `orderBy.${i}.nulls`, message: 'expected "first" or "last"' });
    }
  }
  for (const key of ["limit", "offset"] as const) {
    const value = q[key];
    if (value !== undefined && !(Number.isSafeInteger(value) && (value as number) >= 0)) {
      issues.push({ path: key, message: "expected a non-negative integer" });
    }
  }
  if (issues.length > 0) {
    const list = issues.map((issue) => `${issue.path}: ${issue.message}`).join("; ");
    throw new CvError("invalid_input", `[core] invalid ${table} query: ${list}`, { issues, table });
  }
  return query as ListQuery<Row<T>>;
}
