import { CvError, type Miss, type Row, type TableName } from "@centrovision/core";
import { missingParent, restrictingChild } from "./foreign-key-diagnosis.js";
import {
  deleteSql,
  encodeColumns,
  insertSql,
  type StoredRow,
  toRow,
  updateSql,
  upsertSql,
} from "./row-sql.js";
import type { WriteSession } from "./write-session.js";

/*
 * The body of each write, run inside the caller's transaction. Inputs are already validated by
 * the table's zod schemas; stamps (created_at, updated_at, version, base_version) come from the
 * schema's defaults and the touch trigger, exactly as cv_touch_row does in PostgreSQL. No verified
 * person writes here: created_by and updated_by are null (the server the row reaches stamps them).
 */

type Values = Record<string, unknown>;

const unattributed = (values: Values): Values => ({ ...values, created_by: null, updated_by: null });

/** A miss of an update or delete of row `id`, or the row it may change. */
function target(
  session: WriteSession,
  table: TableName,
  id: string,
  expected: string | undefined,
): StoredRow | Miss {
  const current = session.read(table, id);
  if (current === null) return "missing";
  return expected !== undefined && current.version !== expected ? "stale" : current;
}

function stored<T extends TableName>(session: WriteSession, table: T, id: string): Row<T> {
  const image = session.current(table, id);
  if (image === null)
    throw new CvError("unknown", `[adapter-sqlite] ${table} row vanished inside its own write`);
  return toRow(table, image);
}

export function insertRow<T extends TableName>(session: WriteSession, table: T, values: Values): Row<T> {
  const [names, params] = encodeColumns(table, unattributed(values));
  session.statement(insertSql(table, names), params, {
    action: `${table}.insert`,
    table,
    diagnose: () => missingParent(session.sql, table, values),
  });
  return stored(session, table, String(values.id));
}

/** Creates the row or overwrites its given columns. */
export function upsertRow<T extends TableName>(session: WriteSession, table: T, values: Values): Row<T> {
  const [names, params] = encodeColumns(table, unattributed(values));
  session.statement(upsertSql(table, names), params, {
    action: `${table}.upsert`,
    table,
    diagnose: () => missingParent(session.sql, table, values),
  });
  return stored(session, table, String(values.id));
}

export function updateRow<T extends TableName>(
  session: WriteSession,
  table: T,
  id: string,
  values: Values,
  expectedVersion: string | undefined,
): Row<T> | Miss {
  const current = target(session, table, id, expectedVersion);
  if (typeof current === "string") return current;
  const [names, params] = encodeColumns(table, values);
  session.statement(updateSql(table, names), [...params, id], {
    action: `${table}.update`,
    table,
    diagnose: () => missingParent(session.sql, table, values),
  });
  return stored(session, table, id);
}

/** True when the row is gone (with its cascades). */
export function deleteRow(
  session: WriteSession,
  table: TableName,
  id: string,
  expectedVersion: string | undefined,
): true | Miss {
  const current = target(session, table, id, expectedVersion);
  if (typeof current === "string") return current;
  session.statement(deleteSql(table), [id], {
    action: `${table}.delete`,
    table,
    diagnose: () => restrictingChild(session.sql, table, id),
  });
  return true;
}
