import { CvError, type ErrorCode, TABLE_NAMES, type TableName, tables } from "@centrovision/core";
import postgres from "postgres";
import { driverCode, isServerDown, NETWORK_REASONS, SERVER_DOWN, TLS_CODE } from "./driver-errors/index.js";

/** What a message may name: the server and the login, never a password or a row value. */
export interface ErrorContext {
  /** `host:port/database`. */
  readonly label: string;
  readonly user: string;
  readonly connectTimeoutMs: number;
  readonly statementTimeoutMs: number;
  /** The table the failing call was about. */
  readonly table?: TableName;
}

const DATA_EXCEPTIONS: Readonly<Record<string, string>> = {
  "22001": "text too long",
  "22003": "number out of range",
  "22007": "invalid date or time",
  "22008": "date or time out of range",
  "22P02": "invalid value for the column type",
  "22023": "invalid parameter value",
};

/**
 * A summary of the driver error for `cause`. The error itself is never attached: PostgreSQL's
 * DETAIL quotes row values (`Key (document_id)=(…) already exists`) and postgres.js hangs the
 * query parameters on it, and a logged cause chain would carry patient data.
 */
function summary(error: unknown): Record<string, string> {
  const source = (typeof error === "object" && error !== null ? error : {}) as Record<string, unknown>;
  const out: Record<string, string> = { name: typeof source.name === "string" ? source.name : typeof error };
  for (const key of ["code", "constraint_name", "table_name", "column_name", "routine"]) {
    if (typeof source[key] === "string") out[key] = source[key] as string;
  }
  return out;
}

/** The unique key a constraint name stands for, in the words the memory source uses. */
function uniqueColumns(table: TableName, constraint: string): string {
  if (constraint === `${table}_pkey`) return "id";
  // A trigger's own table (e.g. the sync change log) is not one of ours.
  if (!Object.hasOwn(tables, table)) return constraint;
  const match = tables[table].uniques.find((columns) => `${table}_${columns.join("_")}_key` === constraint);
  return match ? match.join(", ") : constraint;
}

function foreignKeyMessage(context: ErrorContext, constraint: string): string {
  for (const child of TABLE_NAMES) {
    for (const fk of tables[child].foreignKeys) {
      if (`${child}_${fk.column}_fkey` !== constraint) continue;
      return child === context.table
        ? `${child}.${fk.column} references a missing ${fk.references} row`
        : `${fk.references} row is still referenced by ${child}.${fk.column}`;
    }
  }
  return `foreign key ${constraint} is violated`;
}

function fromServer(error: postgres.PostgresError, context: ErrorContext): [ErrorCode, string] {
  const state = error.code;
  const table = (error.table_name ?? context.table ?? "row") as TableName;
  const constraint = error.constraint_name ?? "";
  switch (state) {
    case "23505":
      return ["constraint", `${table} already has a row with this ${uniqueColumns(table, constraint)}`];
    case "23503":
    // ON DELETE RESTRICT reports restrict_violation, not foreign_key_violation.
    case "23001":
      return ["constraint", foreignKeyMessage(context, constraint)];
    case "23514":
      return ["constraint", `${table} row breaks the rule ${constraint}`];
    case "23502":
      return ["constraint", `${table}.${error.column_name ?? "?"} must not be null`];
    case "28P01":
      return ["unauthorized", `the clinic server refused the password for user ${context.user}`];
    case "28000":
      return [
        "unauthorized",
        `the clinic server refused user ${context.user} for ${context.label} (no such role, or not allowed by pg_hba.conf)`,
      ];
    case "42501":
      return [
        "unauthorized",
        error.message.includes("row-level security")
          ? `the clinic server's access rules do not let this person write this ${table} row`
          : `user ${context.user} may not do this on ${context.table ?? "this object"}: a PC works only as a signed-in person (a clinic session), with a login in centrovision_app`,
      ];
    case "CV010":
      // The server's own text (sql/0003: fixed sentences, no values) says what is wrong with the session.
      return [
        "unauthorized",
        `the clinic server refused the person's session: ${error.message}; sign in again`,
      ];
    case "57014":
      // The server's own message (no values in it) tells its timeout from a cancel by someone else.
      return [
        "timeout",
        error.message.includes("statement timeout")
          ? `the clinic server cancelled the statement after ${context.statementTimeoutMs} ms (statement_timeout)`
          : "the clinic server cancelled the statement (cancel request from another session)",
      ];
    case "3D000":
      return ["unknown", `database ${context.label} does not exist on the clinic server`];
    case "40001":
    case "40P01":
      return [
        "unknown",
        `the clinic server aborted the transaction to resolve a conflict (SQLSTATE ${state}); nothing was written`,
      ];
    case "42P01":
    case "42703":
    case "42704":
      return [
        "unknown",
        `the clinic server's schema does not match this version (SQLSTATE ${state}); run the migrations`,
      ];
  }
  const down = SERVER_DOWN[state];
  if (isServerDown(state)) {
    return [
      "unavailable",
      `cannot use the clinic server at ${context.label}: ${down ?? "connection failure"} (SQLSTATE ${state})`,
    ];
  }
  if (state.startsWith("23"))
    return ["constraint", `${table} row breaks the constraint ${constraint || state}`];
  if (state.startsWith("22")) {
    const what = DATA_EXCEPTIONS[state] ?? "invalid value";
    const column = error.column_name ? `.${error.column_name}` : "";
    return [
      "invalid_input",
      `the clinic server rejected a value for ${table}${column}: ${what} (SQLSTATE ${state})`,
    ];
  }
  return ["unknown", `the clinic server reported SQLSTATE ${state}`];
}

/**
 * Translates anything a `postgres` call threw into a `CvError`; a `CvError` passes through.
 * Messages name the server, user, table and constraint, never a value: the server's own message
 * and DETAIL are not copied.
 */
export function toCvError(error: unknown, context: ErrorContext): CvError {
  if (error instanceof CvError) return error;
  const options = { cause: summary(error), ...(context.table !== undefined && { table: context.table }) };
  if (error instanceof postgres.PostgresError) {
    const [code, message] = fromServer(error, context);
    const constraint = error.constraint_name;
    return new CvError(code, `[adapter-postgres] ${message}`, {
      ...options,
      ...(code === "constraint" && constraint !== undefined && { constraint }),
    });
  }
  const code = driverCode(error);
  if (code === "CONNECT_TIMEOUT") {
    const reason = `no answer within ${context.connectTimeoutMs} ms`;
    return new CvError(
      "unavailable",
      `[adapter-postgres] cannot reach the clinic server at ${context.label} (${reason})`,
      options,
    );
  }
  if (code !== undefined && code in NETWORK_REASONS) {
    const reason = NETWORK_REASONS[code];
    return new CvError(
      "unavailable",
      `[adapter-postgres] cannot reach the clinic server at ${context.label} (${reason})`,
      options,
    );
  }
  if (code !== undefined && TLS_CODE.test(code)) {
    return new CvError(
      "unavailable",
      `[adapter-postgres] the clinic server's TLS certificate failed verification (${code}); check ssl.caFile and the host name`,
      options,
    );
  }
  return new CvError(
    "unknown",
    `[adapter-postgres] unexpected error from the postgres driver (${code ?? summary(error).name})`,
    options,
  );
}
