/**
 * `@centrovision/core/shared`: what every side shares, with no runtime dependency (no zod, no
 * RxJS), for browser bundles such as ui-react's: the error class, the connection status and its
 * check, the conflict types and the table names.
 */
export {
  CvError,
  type CvErrorJSON,
  type CvErrorOptions,
  ERROR_CODES,
  type ErrorCode,
  type InputIssue,
} from "../errors.js";
export {
  type ConnectionMode,
  type ConnectionStatus,
  TIERS,
  type Tier,
  type TierHealth,
  type TierStatus,
} from "../status.js";
export { TABLE_NAMES, type TableName } from "../tables/table-names.js";
export type { ConflictResolution, SyncConflict } from "./conflicts.js";
export { parseConnectionStatus } from "./parse-status.js";
