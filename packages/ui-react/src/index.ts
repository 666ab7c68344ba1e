export type { ConnectionMode, ConnectionStatus, SyncConflict } from "@centrovision/core/shared";
export { ConflictReview, type ConflictReviewProps } from "./conflict-review.js";
export {
  describeNetworkStatus,
  type IndicatorState,
  pendingSuffix,
  type StatusDescription,
} from "./describe-status.js";
export {
  type DoubleBookingChoice,
  DoubleBookingReview,
  type DoubleBookingReviewProps,
} from "./double-booking-review.js";
export {
  createInvokeStatusSource,
  type InvokeFn,
  type InvokeStatusSourceOptions,
} from "./invoke-source.js";
export {
  type NetworkStatus,
  NetworkStatusProvider,
  type NetworkStatusProviderProps,
  useConnectionStatus,
  useNetworkStatus,
} from "./network-status.js";
export {
  createObservableStatusSource,
  type ObservableStatusSourceOptions,
  type StatusObservable,
} from "./observable-source.js";
export type { StatusSnapshot, StatusSource } from "./status-source.js";
export { OFFLINE_ANNOUNCEMENT, SyncIndicator, type SyncIndicatorProps } from "./sync-indicator.js";
