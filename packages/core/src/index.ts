export type { Capabilities, DataSource, ProbeResult, SourceKind } from "./data-source.js";
export { type CallOptions, withDeadline } from "./deadline.js";
export {
  CvError,
  type CvErrorJSON,
  type CvErrorOptions,
  ERROR_CODES,
  type ErrorCode,
  type InputIssue,
  isCvError,
  isTierDown,
} from "./errors.js";
export { createMemorySource, type MemorySource, type MemorySourceOptions } from "./memory/memory-source.js";
export type {
  ColumnFilter,
  ListQuery,
  OrderBy,
  Repository,
  Where,
  WriteOptions,
} from "./repository.js";
export {
  createRepository,
  type DriverCall,
  type DriverRow,
  type Miss,
  type RepositoryDriver,
  repositoriesOf,
} from "./repository-driver.js";
export {
  createFailoverRouter,
  type FailoverRouter,
  type FailoverRouterOptions,
  type RouterHooks,
} from "./router/failover-router.js";
export type { JournalEntry, UnknownWrite, UnknownWriteOutcome } from "./router/journal.js";
export {
  parseRouterConfig,
  type RouterConfig,
  type RouterConfigInput,
  routerConfigSchema,
} from "./router/router-config.js";
export type { RouterCounters } from "./router/router-status.js";
export type { ConflictResolution, SyncConflict } from "./shared/conflicts.js";
export { parseConnectionStatus } from "./shared/parse-status.js";
export {
  type ConnectionMode,
  type ConnectionStatus,
  TIERS,
  type Tier,
  type TierHealth,
  type TierStatus,
} from "./status.js";
export {
  APPOINTMENT_STATUSES,
  APPOINTMENT_TYPES,
  type ColumnType,
  canonicalTimestamp,
  type NewRow,
  PATIENT_SEXES,
  type Row,
  type RowPatch,
  SYNCED_TABLES,
  TABLE_NAMES,
  type TableDef,
  type TableName,
  tables,
} from "./tables/index.js";
export {
  configIssues,
  listIssues,
  parseConfig,
  parseId,
  parseListQuery,
  parseNewRow,
  parseOrThrow,
  parseRowPatch,
  parseStoredRow,
  zodIssues,
} from "./validate.js";
export { PRODUCT_VERSION } from "./version.js";
