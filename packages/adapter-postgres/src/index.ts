export { tlsOptions } from "./internal/client-options.js";
export {
  type PostgresConfig,
  type PostgresConfigInput,
  postgresConfigSchema,
  type ResolvedConnection,
  type ResolvedPostgresConfig,
  resolvePostgresConfig,
} from "./postgres-config.js";
export { createPostgresSource, POSTGRES_CAPABILITIES } from "./postgres-source.js";
