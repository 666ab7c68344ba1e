import type { Row, TableName } from "@centrovision/core";
import { DummyDriver, Kysely, PostgresAdapter, PostgresIntrospector, PostgresQueryCompiler } from "kysely";

/**
 * The Kysely view of the EHR schema, derived from the core table definitions so it cannot drift
 * from the zod schemas: every table's columns with their canonical row types.
 */
export type Database = { [T in TableName]: Row<T> };

/**
 * Kysely as a typed SQL builder only (its documented "compile without executing" setup): the
 * compiled text and parameters run on `postgres` directly (see execute.ts). Executing through
 * kysely-postgres-js cost a `reserve()` — which builds a whole `Sql` instance — plus an unprepared
 * statement and its extra Describe round trip on every call: a `get` measured 2.7–3× the raw
 * driver (bench/overhead.bench.ts prints it each run).
 */
export const builder = new Kysely<Database>({
  dialect: {
    createAdapter: () => new PostgresAdapter(),
    createDriver: () => new DummyDriver(),
    createIntrospector: (db) => new PostgresIntrospector(db),
    createQueryCompiler: () => new PostgresQueryCompiler(),
  },
});
