export { type SyncEngineConfig, type SyncEngineOptions, syncEngineConfigSchema } from "./engine-options.js";
export { type MeasuredNode, measureNode } from "./internal/clock.js";
export {
  createPostgresPeer,
  type PostgresClient,
  type PostgresPeerOptions,
  type PostgresQuery,
} from "./postgres-peer.js";
export {
  createSupabasePeer,
  type PostgrestErrorLike,
  type SupabasePeerOptions,
  type SupabaseRpcClient,
  type SupabaseRpcRequest,
} from "./supabase-peer.js";
export { createSyncEngine, type SyncEngine } from "./sync-engine.js";
export {
  BLOCKING_REASONS,
  isSyncError,
  SyncError,
  type SyncErrorOptions,
  type SyncErrorReason,
} from "./sync-errors.js";
export type { SyncPeer } from "./sync-peer.js";
export type {
  BlockedDirection,
  BlockReason,
  ChangeLogState,
  SyncDirection,
  SyncPhase,
  SyncProgress,
  SyncStatus,
} from "./sync-status.js";
export {
  type ApplyRequest,
  type ApplyResult,
  type AuditEvent,
  type AuditQuery,
  type AuditVerification,
  type ChangeAuthor,
  type ClinicKey,
  type ConflictQuery,
  type ConflictResolution,
  compareCursors,
  type NodeInfo,
  type PeerState,
  type PullPage,
  type PurgeResult,
  type ResolveResult,
  type SealedAuditEvent,
  type SnapshotApplyResult,
  type SnapshotPage,
  type SnapshotProgress,
  type SnapshotRow,
  type SourceIdentity,
  START_CURSOR,
  type SyncChange,
  type SyncConflict,
  type SyncCursor,
} from "./sync-types.js";
