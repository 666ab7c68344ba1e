export type { SqliteBatch, SqliteChangedRow, SqliteLeftRow, SqliteRecord } from "./sqlite-batch.js";
export {
  parseSqliteConfig,
  type ResolvedSqliteConfig,
  type SqliteSourceConfig,
  sqliteSourceConfigSchema,
} from "./sqlite-config.js";
export {
  loadSqliteKey,
  type SqliteKey,
  type SqliteKeyOptions,
  sqliteKeyOptionsSchema,
} from "./sqlite-key.js";
export { openSqliteReadOnly, type SqliteReader, type SqliteStoredValue } from "./sqlite-reader.js";
export {
  createSqliteSource,
  type RecoveryReport,
  SQLITE_CAPABILITIES,
  type SqliteSource,
} from "./sqlite-source.js";
