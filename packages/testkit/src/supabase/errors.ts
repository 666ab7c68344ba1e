/**
 * PostgREST's error bodies and statuses. Every failure the gateway answers
 * with is an {@link ApiError}; database errors are translated by
 * {@link fromDatabaseError} with PostgREST's SQLSTATE → HTTP table
 * (`src/PostgREST/Error.hs`, `mapSQLtoHTTP`).
 */

/** The four keys PostgREST always sends (absent values are `null`). */
export interface ErrorBody {
  code: string;
  message: string;
  details: string | null;
  hint: string | null;
}

export class ApiError extends Error {
  override readonly name = "ApiError";
  readonly body: ErrorBody;

  constructor(
    readonly status: number,
    code: string,
    message: string,
    details: string | null = null,
    hint: string | null = null,
    /** Extra response headers, e.g. `WWW-Authenticate` or `Content-Range`. */
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
    this.body = { code, message, details, hint };
  }

  /** The JSON the client receives. */
  toJSON(): object {
    return this.body;
  }
}

/**
 * A refusal by Supabase's API gateway (Kong), which answers before PostgREST
 * with its own two-key body, e.g. for a missing or unknown `apikey`.
 */
export class GatewayError extends ApiError {
  constructor(message: string, hint: string) {
    super(401, "", message, null, hint);
  }

  override toJSON(): object {
    return { message: this.body.message, hint: this.body.hint };
  }
}

/** PGRST100: the query string did not parse. */
export function parseError(what: string, input: string, column: number, details: string): ApiError {
  return new ApiError(
    400,
    "PGRST100",
    `"failed to parse ${what} (${input})" (line 1, column ${column})`,
    details,
  );
}

/** PGRST204: a payload or `columns` key that is not a column. */
export function columnNotFound(table: string, column: string): ApiError {
  return new ApiError(
    400,
    "PGRST204",
    `Could not find the '${column}' column of '${table}' in the schema cache`,
  );
}

/** 42703 as PostgreSQL words it; raised before SQL runs because identifiers come only from the catalog. */
export function undefinedColumn(table: string, column: string): ApiError {
  return new ApiError(400, "42703", `column ${table}.${column} does not exist`);
}

/** PGRST127: valid PostgREST syntax this gateway deliberately does not implement. */
export function notImplemented(details: string): ApiError {
  return new ApiError(400, "PGRST127", "Feature not implemented", details);
}

export function invalidBody(message: string): ApiError {
  return new ApiError(400, "PGRST102", message);
}

export function singularityError(rows: number): ApiError {
  return new ApiError(
    406,
    "PGRST116",
    "Cannot coerce the result to a single JSON object",
    `The result contains ${rows} rows`,
  );
}

/** The slice of a `postgres` (porsager) error we read. */
interface DatabaseErrorLike {
  code?: unknown;
  message?: unknown;
  detail?: unknown;
  hint?: unknown;
  severity?: unknown;
}

/** True for an error the server sent (it has a severity); false for socket or driver errors. */
export function isServerError(
  error: unknown,
): error is DatabaseErrorLike & { code: string; message: string } {
  if (typeof error !== "object" || error === null) return false;
  const e = error as DatabaseErrorLike;
  return typeof e.severity === "string" && typeof e.code === "string" && /^[0-9A-Z]{5}$/.test(e.code);
}

/** SQLSTATE → HTTP status, as PostgREST maps it. `anonymous` decides 42501 (401 vs 403). */
export function statusForSqlState(code: string, message: string, anonymous: boolean): number {
  const exact: Record<string, number> = {
    "23503": 409,
    "23505": 409,
    "25006": 405,
    "53400": 500,
    "57P01": 503,
    P0001: 400,
    "42883": 404,
    "42P01": 404,
    "42P17": 500,
  };
  if (code === "42501") return anonymous ? 401 : 403;
  if (code === "21000") return message.endsWith("requires a WHERE clause") ? 400 : 500;
  if (code === "22023") return message.startsWith("role") && message.endsWith("does not exist") ? 401 : 400;
  const known = exact[code];
  if (known !== undefined) return known;
  if (code.startsWith("PT")) {
    const status = Number(code.slice(2));
    return Number.isInteger(status) && status >= 100 && status <= 599 ? status : 500;
  }
  const byClass: Record<string, number> = {
    "08": 503,
    "09": 500,
    "0L": 403,
    "0P": 403,
    "25": 500,
    "28": 403,
    "2D": 500,
    "38": 500,
    "39": 500,
    "3B": 500,
    "40": 500,
    "53": 503,
    "54": 500,
    "55": 500,
    "57": 500,
    "58": 500,
    F0: 500,
    HV: 500,
    P0: 500,
    XX: 500,
  };
  return byClass[code.slice(0, 2)] ?? 400;
}

const CONNECTION_CODES = /^(E[A-Z]+|CONNECT_TIMEOUT|CONNECTION_[A-Z_]+)$/;

/**
 * Translates what the database said into PostgREST's answer. A lost or
 * refused connection becomes 503 PGRST000, the code PostgREST uses when it
 * loses the database; its details name only the driver's error code, never
 * data. Anything else is not a database error: `undefined`.
 */
export function fromDatabaseError(error: unknown, anonymous: boolean): ApiError | undefined {
  if (isServerError(error)) {
    const status = statusForSqlState(error.code, error.message, anonymous);
    const details = typeof error.detail === "string" ? error.detail : null;
    const hint = typeof error.hint === "string" ? error.hint : null;
    const headers: Record<string, string> = status === 401 ? { "WWW-Authenticate": "Bearer" } : {};
    return new ApiError(status, error.code, error.message, details, hint, headers);
  }
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === "string" && CONNECTION_CODES.test(code)) {
    return new ApiError(503, "PGRST000", "Database connection error. Retrying the connection.", code);
  }
  return undefined;
}

/** The body for a failure we did not foresee: it says nothing about the request or the data. */
export function internalError(): ApiError {
  return new ApiError(500, "PGRSTX00", "Internal server error");
}

/** An unforeseen error for the log: its name and stack frames, never its message (which may quote request values). */
export function describeInternal(error: unknown): string {
  if (!(error instanceof Error)) return typeof error;
  const frames = (error.stack ?? "").split("\n").filter((line) => line.trimStart().startsWith("at "));
  return `${error.name}\n${frames.slice(0, 8).join("\n")}`;
}
