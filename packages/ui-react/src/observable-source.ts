import { type ConnectionStatus, CvError } from "@centrovision/core/shared";
import { SnapshotStore } from "./internal/snapshot-store.js";
import type { StatusSource } from "./status-source.js";
import { asError } from "./ui-error.js";

/** The slice of an RxJS `Observable` this package uses, so it needs no RxJS of its own. */
export interface StatusObservable {
  subscribe(observer: { next: (status: ConnectionStatus) => void; error: (error: unknown) => void }): {
    unsubscribe(): void;
  };
}

export interface ObservableStatusSourceOptions {
  /** The router's `status$`. */
  status$: StatusObservable;
  /** The router's `getStatus`, for a snapshot before anything subscribed and for `refresh`. */
  getStatus?: () => ConnectionStatus;
  /** Runs one sync cycle, e.g. `() => engine.syncNow()`. Without it `triggerSync` rejects. */
  triggerSync?: () => Promise<unknown>;
}

/**
 * A source over an in-process status stream (the router living in the same process as React).
 * The stream is subscribed while React is, so a closed provider leaves no subscription behind.
 */
export function createObservableStatusSource(options: ObservableStatusSourceOptions): StatusSource {
  if (typeof options.status$?.subscribe !== "function") {
    throw new CvError(
      "invalid_config",
      "[ui-react] createObservableStatusSource: status$ must be an observable with subscribe(), e.g. router.status$",
    );
  }
  const { status$, getStatus, triggerSync } = options;
  const store = new SnapshotStore(getStatus?.() ?? null);
  let upstream: { unsubscribe(): void } | null = null;

  return {
    getSnapshot: store.get,
    subscribe(onChange) {
      const remove = store.add(onChange);
      upstream ??= status$.subscribe({
        next: (status) => store.setStatus(status),
        error: (error) => store.setError(asError(error)),
      });
      return () => {
        remove();
        if (store.size === 0) {
          upstream?.unsubscribe();
          upstream = null;
        }
      };
    },
    async triggerSync() {
      if (triggerSync === undefined) {
        throw new CvError(
          "invalid_config",
          "[ui-react] triggerSync is not available: pass triggerSync to createObservableStatusSource",
        );
      }
      await triggerSync();
    },
    async refresh() {
      if (getStatus === undefined) return;
      try {
        store.setStatus(getStatus());
      } catch (error) {
        store.setError(asError(error));
      }
    },
  };
}
