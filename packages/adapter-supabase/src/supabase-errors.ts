import { CvError, type ErrorCode, TABLE_NAMES, type TableName, tables } from "@centrovision/core";
import { isServerDown } from "./driver-errors/index.js";

/** Socket-level causes postgrest-js and undici report in `details` / `cause.code`. */
const NETWORK_REASONS: Readonly<Record<string, string>> = {
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset",
  ENOTFOUND: "host not found",
  EAI_AGAIN: "DNS lookup failed",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  ETIMEDOUT: "TCP timeout",
  EPIPE: "connection broken",
  UND_ERR_CONNECT_TIMEOUT: "connect timeout",
  UND_ERR_SOCKET: "connection closed by the other side",
  UND_ERR_HEADERS_TIMEOUT: "no response headers in time",
  UND_ERR_BODY_TIMEOUT: "response body stalled",
};

/** The error object postgrest-js resolves with: PostgREST's body, or its own for network failures. */
export interface PostgrestErrorLike {
  readonly message?: string;
  readonly code?: string;
  readonly details?: string | null;
  readonly hint?: string | null;
}

/** What a message may name: the host and the table, never a key, a token or a row value. */
export interface ErrorContext {
  /** `host[:port]` of the project URL. */
  readonly host: string;
  readonly table?: TableName;
}

const INVALID_VALUE: Readonly<Record<string, string>> = {
  "22001": "text too long",
  "22003": "number out of range",
  "22007": "invalid date or time",
  "22008": "date or time out of range",
  "22P02": "invalid value for the column type",
  PGRST100: "the query did not parse",
  PGRST102: "the request body is not valid JSON",
  PGRST103: "the requested range is not satisfiable",
};

const UNAUTHORIZED = /^(42501|PGRST30[123]|28)/;
const SCHEMA_DRIFT = new Set(["PGRST200", "PGRST202", "PGRST205", "42P01", "42703", "42883"]);
/** Only codes of these shapes are echoed in a message; anything else could be arbitrary text. */
const SAFE_CODE = /^([0-9A-Z]{5}|PGRST\d{3})$/;
const IDENTIFIER = /^[a-z_][a-z0-9_$]{0,62}$/;

/**
 * An identifier PostgreSQL quoted in its message (`constraint "patients_document_id_key"`). The
 * message itself is never copied: for 22P02 and friends it quotes the offending value.
 */
function quoted(message: string | undefined, before: RegExp): string | undefined {
  const match = message?.match(new RegExp(`${before.source}\\s*"([^"]+)"`));
  const name = match?.[1];
  return name !== undefined && IDENTIFIER.test(name) ? name : undefined;
}

function uniqueColumns(table: TableName, constraint: string): string {
  if (constraint === `${table}_pkey`) return "id";
  const match = tables[table].uniques.find((columns) => `${table}_${columns.join("_")}_key` === constraint);
  return match ? match.join(", ") : constraint;
}

/** The words the other sources use, so a message reads the same on every tier. */
function foreignKeyMessage(table: string, constraint: string | undefined): string {
  for (const child of TABLE_NAMES) {
    for (const fk of tables[child].foreignKeys) {
      if (`${child}_${fk.column}_fkey` !== constraint) continue;
      return child === table
        ? `${child}.${fk.column} references a missing ${fk.references} row`
        : `${fk.references} row is still referenced by ${child}.${fk.column}`;
    }
  }
  return `a foreign key${constraint ? ` (${constraint})` : ""} is violated`;
}

function constraintError(
  code: string,
  error: PostgrestErrorLike,
  table: string,
): [string, string | undefined] {
  const constraint = quoted(error.message, /constraint/);
  switch (code) {
    case "23505":
      return [
        `${table} already has a row with this ${uniqueColumns(table as TableName, constraint ?? "")}`,
        constraint,
      ];
    case "23503":
    case "23001":
      return [foreignKeyMessage(table, constraint), constraint];
    case "23514":
      return [`${table} row breaks the rule ${constraint ?? "(a CHECK constraint)"}`, constraint];
    case "23502":
      return [`${table}.${quoted(error.message, /column/) ?? "?"} must not be null`, constraint];
    default:
      return [`${table} row breaks a constraint (SQLSTATE ${code})`, constraint];
  }
}

/** A network-class failure (postgrest-js answers status 0): abort/timeout, or a socket error. */
function networkFailure(error: PostgrestErrorLike, context: ErrorContext): [ErrorCode, string] {
  const text = `${error.message ?? ""}\n${error.details ?? ""}`;
  if (/\b(AbortError|TimeoutError)\b/.test(text)) {
    return ["timeout", `the request to Supabase at ${context.host} was aborted before it answered`];
  }
  const reason = Object.keys(NETWORK_REASONS).find((code) => text.includes(code));
  const why = reason ? NETWORK_REASONS[reason] : "network error";
  return ["unavailable", `cannot reach Supabase at ${context.host} (${why})`];
}

function classify(
  error: PostgrestErrorLike,
  status: number,
  context: ErrorContext,
): [ErrorCode, string, string?] {
  const code = typeof error.code === "string" && SAFE_CODE.test(error.code) ? error.code : "";
  const table = context.table ?? "row";
  const where = `Supabase at ${context.host}`;
  if (status === 0) return networkFailure(error, context);
  if (code.startsWith("23")) {
    const [message, constraint] = constraintError(code, error, table);
    return ["constraint", message, constraint];
  }
  if (UNAUTHORIZED.test(code) || status === 401 || status === 403) {
    const why = code.startsWith("PGRST30")
      ? "the session token is invalid or expired"
      : code === "42501"
        ? `the key or session may not do this on ${table} (grants or row-level security)`
        : "the API key was refused";
    return [
      "unauthorized",
      `${where} refused the request: ${why}${code ? ` (${code})` : ` (HTTP ${status})`}`,
    ];
  }
  const invalid = INVALID_VALUE[code];
  if (invalid !== undefined || code.startsWith("22")) {
    return ["invalid_input", `${where} rejected a ${table} value: ${invalid ?? "invalid value"} (${code})`];
  }
  if (code === "PGRST204") {
    const column = error.message?.match(/'([a-z_][a-z0-9_]*)' column/)?.[1] ?? "?";
    return ["invalid_input", `${where} does not know ${table}.${column} (PGRST204; schema drift?)`];
  }
  if (SCHEMA_DRIFT.has(code)) {
    return [
      "unknown",
      `${where} does not have the schema this version expects (${code}, schema drift); apply the sql/ migrations`,
    ];
  }
  if (code === "57014") return ["timeout", `${where} cancelled the statement (statement_timeout)`];
  if (isServerDown(code, status)) {
    return ["unavailable", `${where} answered but its database is not serving (${code || `HTTP ${status}`})`];
  }
  if (status >= 200 && status < 300) {
    // postgrest-js turns a 2xx body that is not JSON into an error: something else answered.
    return [
      "unavailable",
      `${where} answered with something that is not PostgREST (a captive portal or proxy?)`,
    ];
  }
  if (status === 413 || status === 414 || status === 431) {
    return [
      "invalid_input",
      `${where} refused the request as too large (HTTP ${status}); use fewer \`in\` values or a smaller batch`,
    ];
  }
  if (code === "40001" || code === "40P01") {
    return [
      "unknown",
      `${where} aborted the transaction to resolve a conflict (${code}); nothing was written`,
    ];
  }
  return ["unknown", `${where} failed with HTTP ${status}${code ? ` (${code})` : ""}`];
}

/**
 * Translates what a postgrest-js query resolved with into a `CvError`. A reachable cloud that
 * refuses the key is `unauthorized`, not down: failing over would hide a misconfiguration.
 * Messages name the host, table, column and constraint only; PostgREST's `message`/`details`
 * often quote row values (`Key (document_id)=(…)`) and are never copied, nor attached as cause.
 */
export function fromPostgrest(error: PostgrestErrorLike, status: number, context: ErrorContext): CvError {
  const [code, message, constraint] = classify(error, status, context);
  const safeCode = typeof error.code === "string" && SAFE_CODE.test(error.code) ? error.code : undefined;
  return new CvError(code, `[adapter-supabase] ${message}`, {
    cause: { status, ...(safeCode !== undefined && { code: safeCode }) },
    ...(context.table !== undefined && { table: context.table }),
    ...(code === "constraint" && constraint !== undefined && { constraint }),
  });
}

/**
 * Translates an exception: a `fetch` rejection in the probe, or anything a client threw. undici
 * rejects with `TypeError: fetch failed` and the socket error as `cause`; an aborted fetch with
 * `AbortError`/`TimeoutError`. Anything else is a bug or a broken client, not a down network.
 */
export function fromThrown(error: unknown, context: ErrorContext): CvError {
  if (error instanceof CvError) return error;
  const e = (typeof error === "object" && error !== null ? error : {}) as Record<string, unknown>;
  const name = typeof e.name === "string" ? e.name : typeof error;
  const causeCode = (e.cause as { code?: unknown } | undefined)?.code;
  const code = typeof causeCode === "string" ? causeCode : typeof e.code === "string" ? e.code : "";
  const network = name === "AbortError" || name === "TimeoutError" || code in NETWORK_REASONS;
  if (network || (name === "TypeError" && e.message === "fetch failed")) {
    return fromPostgrest({ message: name, details: code, code: "" }, 0, context);
  }
  return new CvError(
    "unknown",
    `[adapter-supabase] unexpected ${name} while calling Supabase at ${context.host}`,
    {
      cause: { name },
      ...(context.table !== undefined && { table: context.table }),
    },
  );
}
