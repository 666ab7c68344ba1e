/**
 * `@centrovision/sync-engine/rpc`: how the sync peers call a node's SQL functions (over a
 * PostgreSQL connection, or over Supabase's REST API), for the PC side (`@centrovision/offline`),
 * which calls the client functions (cv_client_apply, cv_client_pending …) through the same
 * transports, deadlines and error mapping.
 */
export { auditQueryArgs, type RpcInvoker } from "../internal/rpc-peer.js";
export { parseReply } from "../internal/wire.js";
export { createPostgresInvoker } from "../postgres-peer.js";
export { createSupabaseInvoker } from "../supabase-peer.js";
