export { type DaemonConfigFile, daemonConfigSchema } from "./config/config-schema.js";
export {
  type DaemonConfig,
  DEFAULT_CONFIG_PATH,
  type LoadConfigOptions,
  loadConfig,
  redactUrl,
  resolveConfig,
} from "./config/load-config.js";
export { type Daemon, runOnce, type StartDaemonOptions, startDaemon } from "./daemon.js";
export { type DaemonMode, type DaemonStatus, isReady, modeOf } from "./daemon-status.js";
export { type DoctorCheck, formatDoctor, runDoctor } from "./doctor.js";
export { EX_CONFIG, EXIT_OK, EXIT_SYNC_FAILURE } from "./exit-codes.js";
export { createIdentityCopier, type IdentityCopier, type IdentityStatus } from "./identity-copy.js";
export { type InitResult, initClinic, scramVerifier } from "./init.js";
export { createLogger, type Logger, REDACT_PATHS } from "./logger.js";
export { applyMigrations, pendingMigrations, SHIPPED_MIGRATIONS_DIR } from "./migrations.js";
export { readStatus, type StatusReport } from "./standalone-status.js";
