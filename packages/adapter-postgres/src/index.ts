export { isConnectionFailure } from "./driver-errors/index.js";
export { tlsOptions } from "./internal/client-options.js";
export type { Database } from "./internal/database.js";
export {
  type PostgresConfig,
  type PostgresConfigInput,
  postgresConfigSchema,
  type ResolvedConnection,
  type ResolvedPostgresConfig,
  resolvePostgresConfig,
} from "./postgres-config.js";
export { type ErrorContext, toCvError } from "./postgres-errors.js";
export { createPostgresSource, POSTGRES_CAPABILITIES } from "./postgres-source.js";
