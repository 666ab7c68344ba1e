import postgres from "postgres";

/**
 * How the `postgres` driver says a server is out of reach: the one table the data source and the
 * sync engine's peer share (`@centrovision/adapter-postgres/driver-errors`, which loads no query
 * builder), so both fail over, and replace their connections, on exactly the same failures.
 */

/** Socket and driver codes that mean the connection is gone; the pool holding it should be replaced. */
export const NETWORK_REASONS: Readonly<Record<string, string>> = {
  ECONNREFUSED: "connection refused",
  ENOTFOUND: "host not found",
  EAI_AGAIN: "DNS lookup failed",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  ENETDOWN: "network down",
  EHOSTDOWN: "host down",
  ECONNRESET: "connection reset",
  ECONNABORTED: "connection aborted",
  EPIPE: "connection broken",
  ETIMEDOUT: "TCP timeout",
  CONNECT_TIMEOUT: "no answer to the connection",
  CONNECTION_CLOSED: "the server closed the connection",
  CONNECTION_DESTROYED: "the connection was dropped while the call was in flight",
  CONNECTION_ENDED: "the connection was closed",
};

/** SQLSTATEs of a server that is there but not serving (and every 08xxx): fail over, like a network error. */
export const SERVER_DOWN: Readonly<Record<string, string>> = {
  "57P01": "the server is shutting down",
  "57P02": "the server crashed",
  "57P03": "the server is starting up or shutting down",
  // Not a shutdown, but for a caller the server is just as unusable: fail over rather than wait.
  "53300": "the server has no free connection slot",
};

/** TLS verification failures: the server answered but cannot be trusted, so it is unusable. */
export const TLS_CODE = /^(ERR_TLS_|ERR_SSL_|CERT_|DEPTH_ZERO_|SELF_SIGNED_|UNABLE_TO_)|^EPROTO$/;

/** The driver's or the socket's `code` of an error, if it has one. */
export function driverCode(error: unknown): string | undefined {
  const code = typeof error === "object" && error !== null ? (error as { code?: unknown }).code : undefined;
  return typeof code === "string" ? code : undefined;
}

/** Whether a SQLSTATE means the server is not serving. */
export function isServerDown(state: string): boolean {
  return state in SERVER_DOWN || state.startsWith("08");
}

/** True when `error` means the connection itself is gone (as opposed to the statement failing). */
export function isConnectionFailure(error: unknown): boolean {
  if (error instanceof postgres.PostgresError) return isServerDown(error.code);
  const code = driverCode(error);
  return code !== undefined && (code in NETWORK_REASONS || TLS_CODE.test(code));
}
