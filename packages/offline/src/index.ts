export {
  type AuditTrailEvent,
  type ClientApplier,
  type ClientApplierOptions,
  type ClientApplyMode,
  type ClientApplyOptions,
  type ClientApplyResult,
  type ClientWrite,
  createClientApplier,
  type DoubleBooking,
  type PendingOptions,
  type RejectedWrite,
} from "./client/client-apply.js";
export { createPcRouterHooks, type PcRouterHooksOptions } from "./client/pc-router-hooks.js";
export type { RefreshReport } from "./offline/cache-refresh.js";
export type { DrainOptions, DrainReport } from "./offline/drain.js";
export {
  type OfflineTierOptions,
  offlineScopeSchema,
  offlineTierOptionsSchema,
} from "./offline/offline-options.js";
export type { OfflineStore } from "./offline/offline-store.js";
export { createOfflineTier, type OfflineTier } from "./offline/offline-tier.js";
export type { DeadLetter, DoubleBookingNotice, OutboxEntry } from "./offline/outbox.js";
export { OTHER_PERSONS_EDIT } from "./offline/outbox.js";
