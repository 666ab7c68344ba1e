import { TABLE_NAMES, type TableName, tables } from "@centrovision/core";
import { ident } from "./columns.js";
import type { SqlRunner } from "./sql-runner.js";

/** A broken foreign key, named as PostgreSQL names it, with a message free of row values. */
export interface ForeignKeyProblem {
  readonly constraint: string;
  readonly detail: string;
}

const exists = (sql: SqlRunner, table: TableName, column: string, value: string) =>
  sql.scalar(`SELECT 1 FROM ${ident(table)} WHERE ${ident(column)} = ? LIMIT 1`, [value]) !== undefined;

/**
 * SQLite reports only "FOREIGN KEY constraint failed". After a failed insert or update of
 * `table` with `values`, finds which reference points at a missing parent.
 */
export function missingParent(
  sql: SqlRunner,
  table: TableName,
  values: Readonly<Record<string, unknown>>,
): ForeignKeyProblem | undefined {
  for (const fk of tables[table].foreignKeys) {
    const parent = values[fk.column];
    if (typeof parent === "string" && !exists(sql, fk.references, "id", parent)) {
      return {
        constraint: `${table}_${fk.column}_fkey`,
        detail: `${table}.${fk.column} references a missing ${fk.references} row`,
      };
    }
  }
  return undefined;
}

/** After a failed delete of a `table` row, finds the restricting child that still points at it. */
export function restrictingChild(
  sql: SqlRunner,
  table: TableName,
  id: string,
): ForeignKeyProblem | undefined {
  for (const child of TABLE_NAMES) {
    for (const fk of tables[child].foreignKeys) {
      if (fk.references === table && fk.onDelete === "restrict" && exists(sql, child, fk.column, id)) {
        return {
          constraint: `${child}_${fk.column}_fkey`,
          detail: `${table} row is still referenced by ${child}.${fk.column}`,
        };
      }
    }
  }
  return undefined;
}
