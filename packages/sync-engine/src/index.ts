export { type SyncEngineOptions, syncEngineConfigSchema } from "./engine-options.js";
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
  postRpcBytes,
  type RealtimeChannelLike,
  rpcRequest,
  type SupabasePeerOptions,
  type SupabaseRealtimeClient,
  type SupabaseRpcClient,
  type SupabaseRpcReply,
  type SupabaseRpcRequest,
} from "./supabase-peer.js";
export { createSyncEngine, type SyncEngine } from "./sync-engine.js";
export {
  isSyncError,
  SyncError,
  type SyncErrorOptions,
  type SyncErrorReason,
} from "./sync-errors.js";
export type { ChangeNotice, SyncPeer } from "./sync-peer.js";
export type {
  BlockedDirection,
  BlockReason,
  ChangeLogState,
  SyncDirection,
  SyncPhase,
  SyncProgress,
  SyncStatus,
} from "./sync-status.js";
export type {
  ApplyRequest,
  ApplyResult,
  AuditEvent,
  AuditQuery,
  AuditVerification,
  ChangeAuthor,
  ClinicKey,
  ConflictQuery,
  ConflictResolution,
  NodeInfo,
  PeerState,
  PullPage,
  PurgeResult,
  ResolveResult,
  SealedAuditEvent,
  SnapshotApplyResult,
  SnapshotPage,
  SnapshotProgress,
  SnapshotRow,
  SourceIdentity,
  SyncChange,
  SyncConflict,
  SyncCursor,
} from "./sync-types.js";
