import type { ConnectionStatus } from "@centrovision/core/shared";

/** What a status source holds now. The same object is returned until something changes. */
export interface StatusSnapshot {
  /** The router's last known status; null until the first one arrives. */
  readonly status: ConnectionStatus | null;
  /** Why the last read failed (the backend did not answer, a malformed status); null after a good read. */
  readonly error: Error | null;
}

/**
 * Where the UI gets the router's status from: a backend over `invoke` (the desktop app), or the
 * router's `status$` in the same process. Shaped for React's `useSyncExternalStore`.
 */
export interface StatusSource {
  /** The current snapshot; must return the same object while nothing changed. */
  getSnapshot(): StatusSnapshot;
  /** Calls `onChange` after every new snapshot; returns the unsubscribe function. */
  subscribe(onChange: () => void): () => void;
  /** Asks for a sync cycle now; resolves when it has run, rejects with its error. */
  triggerSync(): Promise<void>;
  /** Reads the status now instead of waiting for the next push or poll. Never rejects: failures land in `error`. */
  refresh(): Promise<void>;
}
