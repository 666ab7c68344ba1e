import type postgres from "postgres";
import { TABLE_NAMES, type TableName } from "../../src/tables/index.js";
import { type ClinicRows, clinicRows, insertRow } from "./ehr-fixtures.js";
import { rolledBack } from "./test-database.js";

export interface ProbeError {
  code: string;
  constraint: string | undefined;
  message: string;
}

/**
 * Inserts a fresh valid graph up to `table`, with `change` applied to that table's row, in a
 * transaction that is rolled back. Returns PostgreSQL's error, or undefined if it accepted the row.
 */
export async function probeInsert(
  sql: postgres.Sql,
  table: TableName,
  change: Record<string, unknown>,
): Promise<ProbeError | undefined> {
  const rows: ClinicRows = clinicRows();
  let failure: ProbeError | undefined;
  await rolledBack(sql, async (tx) => {
    for (const name of TABLE_NAMES.slice(0, TABLE_NAMES.indexOf(table)))
      await insertRow(tx, name, rows[name]);
    try {
      await insertRow(tx, table, { ...rows[table], ...change });
    } catch (error) {
      const { code, constraint_name, message } = error as postgres.PostgresError;
      failure = { code, constraint: constraint_name, message };
    }
  });
  return failure;
}
