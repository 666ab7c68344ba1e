import type { ConnectionMode } from "@centrovision/core/shared";
import { Cloud, LoaderCircle, RefreshCw, Server, WifiOff } from "lucide-react";
import { useEffect, useRef, useState } from "react";
import { describeNetworkStatus, type IndicatorState } from "./describe-status.js";
import { SR_ONLY } from "./internal/sr-only.js";
import { useNetworkStatus } from "./network-status.js";

const ICONS = {
  cloud: Cloud,
  server: Server,
  offline: WifiOff,
  syncing: RefreshCw,
  checking: LoaderCircle,
  unreachable: WifiOff,
} as const satisfies Record<IndicatorState, unknown>;

/** Read out once, assertively, when the PC falls back to its own file: the user must know. */
export const OFFLINE_ANNOUNCEMENT =
  "Sin conexión a internet ni al servidor de la clínica. Puede seguir trabajando: " +
  "los cambios se guardan en este equipo y se enviarán al volver la conexión.";

const SPIN_CLASS = "cv-sync-indicator-spin";
// A class rather than an inline style so users who ask for reduced motion get a still icon.
const SPIN_CSS =
  `@keyframes cv-sync-indicator-spin{to{transform:rotate(360deg)}}` +
  `.${SPIN_CLASS}{animation:cv-sync-indicator-spin 1s linear infinite}` +
  `@media (prefers-reduced-motion:reduce){.${SPIN_CLASS}{animation:none}}`;

export interface SyncIndicatorProps {
  /** Show the label next to the icon. When false it stays in the tooltip and for screen readers. Default true. */
  showLabel?: boolean;
  /** Icon size in pixels. Default 20. */
  size?: number;
  className?: string;
}

function useOfflineAnnouncement(mode: ConnectionMode, ready: boolean): string {
  const previous = useRef<ConnectionMode | null>(null);
  const [announcement, setAnnouncement] = useState("");
  useEffect(() => {
    if (!ready) return;
    if (mode === "offline" && previous.current !== null && previous.current !== "offline") {
      setAnnouncement(OFFLINE_ANNOUNCEMENT);
    } else if (mode !== "offline") {
      setAnnouncement("");
    }
    previous.current = mode;
  }, [mode, ready]);
  return announcement;
}

/**
 * Where this PC works, at a glance: Cloud (green), Server (yellow), WifiOff (red), RefreshCw
 * spinning while a sync runs. The Spanish label is the tooltip and the accessible text, so the
 * state never rests on colour alone. Needs a `NetworkStatusProvider` above it.
 */
export function SyncIndicator({ showLabel = true, size = 20, className }: SyncIndicatorProps) {
  const status = useNetworkStatus();
  const { state, label, color } = describeNetworkStatus(status);
  const announcement = useOfflineAnnouncement(status.connectionMode, status.ready);
  const Icon = ICONS[state];
  const spinning = state === "syncing" || state === "checking";
  return (
    <>
      <style>{SPIN_CSS}</style>
      <span
        role="status"
        title={label}
        className={className}
        data-state={state}
        style={{ display: "inline-flex", alignItems: "center", gap: "0.4em", color }}
      >
        <Icon
          aria-hidden="true"
          focusable="false"
          size={size}
          className={spinning ? SPIN_CLASS : undefined}
        />
        <span style={showLabel ? undefined : SR_ONLY}>{label}</span>
      </span>
      <span aria-live="assertive" style={SR_ONLY}>
        {announcement}
      </span>
    </>
  );
}
