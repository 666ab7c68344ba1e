import type postgres from "postgres";
import type { Sql } from "./client-options.js";

/** A compiled statement: SQL text with `$n` placeholders and its parameters. */
export interface Statement {
  readonly sql: string;
  readonly parameters: readonly unknown[];
}

/** The pool, or the connection of a transaction opened with `sql.begin`. */
export type Executor = Pick<Sql, "unsafe">;

type AnyRow = Record<string, unknown>;

/**
 * Statements with more parameters than this are batches or long `in` lists: one-off shapes that
 * would only fill each connection's prepared-statement cache, so they run unnamed.
 */
const PREPARE_LIMIT = 100;

/**
 * Runs a statement as a named prepared statement (cached per connection): one round trip, like the
 * driver's own tagged templates. Unprepared, postgres.js first asks the server for the parameter
 * types, a second round trip. Rows are copied out of the driver's result, which also carries the
 * statement text and column metadata.
 */
export async function execute(executor: Executor, statement: Statement): Promise<AnyRow[]> {
  const parameters = statement.parameters as postgres.ParameterOrJSON<never>[];
  const result = await executor.unsafe(statement.sql, parameters, {
    prepare: parameters.length <= PREPARE_LIMIT,
  });
  return Array.from(result as Iterable<AnyRow>);
}
