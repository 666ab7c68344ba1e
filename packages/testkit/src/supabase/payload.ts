import type { Column, Table } from "./catalog.js";
import { columnNotFound, invalidBody } from "./errors.js";
import { ident, type Params } from "./sql-fragments.js";

/** A JSON request body: the raw text goes to PostgreSQL untouched; only its keys are read here. */
export interface Payload {
  readonly raw: string;
  readonly keys: readonly string[];
  readonly isArray: boolean;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Validates a body as PostgREST does: an object, or an array of objects with
 * the same keys (unless `columns=` names them). Anything else → 400 PGRST102.
 */
export function parsePayload(raw: string | undefined, hasColumns: boolean): Payload {
  let value: unknown;
  try {
    value = JSON.parse(raw ?? "");
  } catch {
    throw invalidBody("Empty or invalid json");
  }
  if (isObject(value)) return { raw: raw ?? "", keys: Object.keys(value), isArray: false };
  if (!Array.isArray(value)) throw invalidBody("Empty or invalid json");
  if (!value.every(isObject)) throw invalidBody("All object keys must match");
  const [first] = value;
  const keys = first ? Object.keys(first) : [];
  if (!hasColumns) {
    const expected = [...keys].sort().join("\0");
    if (!value.every((row) => Object.keys(row).sort().join("\0") === expected)) {
      throw invalidBody("All object keys must match");
    }
  }
  return { raw: raw ?? "", keys, isArray: true };
}

/** The columns a write touches: `columns=` if given, else the payload's keys; each must exist (PGRST204). */
export function payloadColumns(
  table: Table,
  payload: Payload,
  columns: readonly string[] | undefined,
): Column[] {
  return (columns ?? payload.keys).map((name) => {
    const column = table.columns.get(name);
    if (!column) throw columnNotFound(table.name, name);
    return column;
  });
}

/**
 * `FROM`-list items that turn the JSON payload into rows named `pgrst_body`
 * with one typed column per target column (as PostgREST's `fromJsonBodyF`).
 * A key absent from a row is NULL there.
 */
export function bodySource(
  payload: Payload,
  columns: readonly Column[],
  options: { params: Params; limitOne: boolean },
): string {
  const uniform =
    `(SELECT ${options.params.text(payload.raw)}::json AS json_data) pgrst_payload, ` +
    `LATERAL (SELECT CASE WHEN json_typeof(pgrst_payload.json_data) = 'array' THEN pgrst_payload.json_data ` +
    `ELSE json_build_array(pgrst_payload.json_data) END AS val) pgrst_uniform_json`;
  const limit = options.limitOne ? " LIMIT 1" : "";
  if (columns.length === 0) {
    return `${uniform}, LATERAL (SELECT FROM json_array_elements(pgrst_uniform_json.val)${limit}) pgrst_body`;
  }
  const definition = columns.map((c) => `${ident(c.name)} ${c.type}`).join(", ");
  return `${uniform}, LATERAL (SELECT * FROM json_to_recordset(pgrst_uniform_json.val) AS _(${definition})${limit}) pgrst_body`;
}
