import { type ConnectionMode, type ConnectionStatus, CvError } from "@centrovision/core/shared";
import {
  createContext,
  type ReactNode,
  useCallback,
  useContext,
  useMemo,
  useState,
  useSyncExternalStore,
} from "react";
import type { StatusSnapshot, StatusSource } from "./status-source.js";

/** What `useNetworkStatus` returns; a new object only when something in it changed. */
export interface NetworkStatus {
  /** False until the first status arrived; the other fields then describe "offline, nothing pending". */
  readonly ready: boolean;
  /** The cloud (Supabase) answers. Can be true while the router holds the clinic server (hold-down, pin). */
  readonly isOnline: boolean;
  /** Where this PC works: `supabase` (cloud), `local` (clinic server) or `offline` (its own SQLite file). */
  readonly connectionMode: ConnectionMode;
  readonly syncStatus: {
    /** Writes made here that have not reached the cloud yet. */
    readonly pendingChanges: number;
    /** ISO time of the last successful sync, or null. */
    readonly lastSyncAt: string | null;
  };
  /** A sync cycle runs, on the backend or because `triggerSync` was called here. */
  readonly isSyncing: boolean;
  /** Why the router is on this tier (for the IT person); null before the first status. */
  readonly reason: string | null;
  /** Why the last status read failed; the other fields then hold the last status that was read. */
  readonly error: Error | null;
  /** The router's full status (each tier's health), null before the first one. */
  readonly status: ConnectionStatus | null;
  /** Runs a sync cycle now; rejects with its error. */
  triggerSync(): Promise<void>;
  /** Reads the status now. */
  refreshStatus(): Promise<void>;
}

interface ProviderValue {
  readonly source: StatusSource;
  /** Syncs started here and not finished: every indicator spins at once, not only the clicked one. */
  readonly syncsRequested: number;
  readonly triggerSync: () => Promise<void>;
}

const ProviderContext = createContext<ProviderValue | null>(null);

export interface NetworkStatusProviderProps {
  /** From `createInvokeStatusSource` or `createObservableStatusSource`; keep the same object across renders. */
  source: StatusSource;
  children?: ReactNode;
}

export function NetworkStatusProvider({ source, children }: NetworkStatusProviderProps) {
  const [syncsRequested, setSyncsRequested] = useState(0);
  const triggerSync = useCallback(async () => {
    setSyncsRequested((n) => n + 1);
    try {
      await source.triggerSync();
    } finally {
      setSyncsRequested((n) => n - 1);
    }
  }, [source]);
  const value = useMemo(
    () => ({ source, syncsRequested, triggerSync }),
    [source, syncsRequested, triggerSync],
  );
  return <ProviderContext.Provider value={value}>{children}</ProviderContext.Provider>;
}

function useProvider(hook: string): ProviderValue {
  const value = useContext(ProviderContext);
  if (value === null) {
    throw new CvError(
      "invalid_config",
      `[ui-react] ${hook}() needs a <NetworkStatusProvider source={…}> above it in the component tree`,
    );
  }
  return value;
}

function useSnapshot(source: StatusSource): StatusSnapshot {
  return useSyncExternalStore(source.subscribe, source.getSnapshot, source.getSnapshot);
}

/** The router's raw status and the last read error, for screens that show every tier. */
export function useConnectionStatus(): StatusSnapshot {
  return useSnapshot(useProvider("useConnectionStatus").source);
}

/**
 * The status in the terms a screen needs. Core's mode names (`supabase | local | offline`) are
 * the UI's, so `connectionMode` is the router's mode as is. Re-renders only when it changes.
 */
export function useNetworkStatus(): NetworkStatus {
  const { source, syncsRequested, triggerSync } = useProvider("useNetworkStatus");
  const { status, error } = useSnapshot(source);
  const refreshStatus = useCallback(() => source.refresh(), [source]);

  return useMemo(
    () => ({
      ready: status !== null,
      isOnline: status?.tiers.cloud.available ?? false,
      connectionMode: status?.mode ?? "offline",
      syncStatus: { pendingChanges: status?.pendingChanges ?? 0, lastSyncAt: status?.lastSyncAt ?? null },
      isSyncing: syncsRequested > 0 || (status?.isSyncing ?? false),
      reason: status?.reason ?? null,
      error,
      status,
      triggerSync,
      refreshStatus,
    }),
    [status, error, syncsRequested, triggerSync, refreshStatus],
  );
}
