import { consultation, insertConsultation } from "@centrovision/testkit/nodes";
import type postgres from "postgres";
import type { NewRow, TableName } from "../../src/tables/index.js";

/** One valid row per table: testkit's consultation, typed as core's write input. */
export type ClinicRows = { readonly [K in TableName]: NewRow<K> };

export const clinicRows = (): ClinicRows => consultation() as unknown as ClinicRows;

/** Inserts one row as given (no zod), the way a raw SQL client would. */
export async function insertRow(sql: postgres.Sql | postgres.TransactionSql, table: TableName, row: object) {
  await sql`insert into ${sql(table)} ${sql(row as Record<string, postgres.SerializableParameter>)}`;
}

/** Inserts a whole graph, parents first, in one transaction. */
export const insertClinic = (sql: postgres.Sql, rows: ClinicRows): Promise<void> =>
  insertConsultation(sql, rows as never);
