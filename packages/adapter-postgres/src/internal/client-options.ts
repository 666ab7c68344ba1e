import { isIP } from "node:net";
import { type ConnectionOptions, checkServerIdentity } from "node:tls";
import type postgres from "postgres";
import type { ResolvedPostgresConfig } from "../postgres-config.js";
import { PG_TYPES } from "./pg-types.js";

export type PgTypes = typeof PG_TYPES;
export type Sql = postgres.Sql<{ [K in keyof PgTypes]: ReturnType<PgTypes[K]["parse"]> }>;

/**
 * The `ssl` option of a `postgres` client for `mode` (other clients of the clinic server use it
 * too, so every connection to it checks the same way). `verify-full`: the certificate must chain
 * to the CA (PEM text; the system store when none) and name the host. Node only checks the name when it has one; for an IP address we check the IP SANs
 * ourselves, because an IP is not allowed as the TLS server name (SNI).
 */
export function tlsOptions(
  mode: "disable" | "require" | "verify-full",
  host: string,
  ca?: string,
): false | "require" | ConnectionOptions {
  if (mode === "disable") return false;
  if (mode === "require") return "require";
  return Object.freeze({
    rejectUnauthorized: true,
    ...(ca !== undefined && { ca }),
    ...(isIP(host) === 0 && { servername: host }),
    checkServerIdentity: (_name: string, cert: Parameters<typeof checkServerIdentity>[1]) =>
      checkServerIdentity(host, cert),
  });
}

/**
 * Options of one `postgres` client: the pool (`role: "pool"`) or the probe's single connection,
 * for one clinic session (or none). Everything the driver would otherwise take from PG*
 * environment variables is set explicitly.
 */
export function clientOptions(
  config: ResolvedPostgresConfig,
  role: "pool" | "probe",
  session?: string,
): postgres.Options<PgTypes> {
  const { options, connection } = config;
  return {
    host: connection.host,
    port: connection.port,
    database: connection.database,
    user: connection.user,
    ...(connection.password !== undefined && { password: connection.password }),
    ssl: tlsOptions(options.ssl.mode, connection.host, connection.ca),
    max: role === "pool" ? options.max : 1,
    connect_timeout: options.connectTimeoutMs / 1000,
    idle_timeout: options.idleTimeoutSec,
    keep_alive: options.keepAliveSec,
    // The driver waits up to 20 s between reconnect attempts after repeated failures; the router
    // paces retries itself, and a link that is back must be used at once.
    backoff: () => 0,
    // No array parameters are ever sent, so the array-type lookup would only cost a round trip on
    // every new connection, i.e. on every reconnect after an outage. Beware: with it off,
    // postgres 3.4.9 never resolves sql.reserve() on a freshly opened connection (not used here).
    fetch_types: false,
    prepare: true,
    types: PG_TYPES,
    // Notices go to console.log by default; a library must not print.
    onnotice: () => {},
    connection: {
      application_name: role === "pool" ? options.applicationName : `${options.applicationName} probe`,
      statement_timeout: options.statementTimeoutMs,
      // A PC that vanishes mid-transaction (half-open link) must not hold row locks for long.
      idle_in_transaction_session_timeout: options.callTimeoutMs * 2,
      // pg-types.ts parses exactly this output: UTC timestamps, ISO dates.
      TimeZone: "UTC",
      DateStyle: "ISO, MDY",
      // Startup parameters, set before the first statement: the server checks the login may take
      // the role, and verifies the session on every call that asks who the user is.
      ...(session !== undefined && { role: "authenticated", "centrovision.session": session }),
    },
  };
}
