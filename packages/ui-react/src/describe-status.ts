import type { ConnectionMode } from "@centrovision/core/shared";
import type { NetworkStatus } from "./network-status.js";

/** What the indicator shows: `checking` before the first status, `unreachable` when none could be read. */
export type IndicatorState = "cloud" | "server" | "offline" | "syncing" | "checking" | "unreachable";

export interface StatusDescription {
  readonly state: IndicatorState;
  /** Spanish text for the tooltip and screen readers, e.g. "Servidor local (3 pendientes)". */
  readonly label: string;
  /** Colour of the icon and text; never the only signal, the label says the same. */
  readonly color: string;
}

const COLORS = {
  green: "#15803d",
  yellow: "#a16207",
  red: "#b91c1c",
  grey: "#4b5563",
} as const;

const MODE_COLOR: { readonly [K in ConnectionMode]: string } = {
  supabase: COLORS.green,
  local: COLORS.yellow,
  offline: COLORS.red,
};

/** " (1 pendiente)", " (3 pendientes)", or nothing when no change waits. */
export function pendingSuffix(pending: number): string {
  if (pending <= 0) return "";
  return pending === 1 ? " (1 pendiente)" : ` (${pending} pendientes)`;
}

/** The indicator's state and Spanish label for a network status; pure, for UIs that draw their own. */
export function describeNetworkStatus(
  status: Pick<NetworkStatus, "ready" | "error" | "connectionMode" | "isSyncing" | "syncStatus">,
): StatusDescription {
  if (!status.ready) {
    return status.error === null
      ? { state: "checking", label: "Comprobando conexión...", color: COLORS.grey }
      : { state: "unreachable", label: "Sin respuesta del servicio de CentroVision", color: COLORS.red };
  }
  const suffix = pendingSuffix(status.syncStatus.pendingChanges);
  const color = MODE_COLOR[status.connectionMode];
  if (status.isSyncing) return { state: "syncing", label: "Sincronizando...", color };
  switch (status.connectionMode) {
    case "supabase":
      return { state: "cloud", label: `Conectado a la nube${suffix}`, color };
    case "local":
      return { state: "server", label: `Servidor local${suffix}`, color };
    case "offline":
      return { state: "offline", label: `Sin conexión${suffix}`, color };
  }
}
