import type { Tier, TierStatus } from "@centrovision/core";
import { useNetworkStatus } from "@centrovision/ui-react";
import { useCallback, useEffect, useState } from "react";
import { ErrorAlert } from "./error-alert.js";
import { demoControl, errorText, invoke } from "./invoke.js";
import { MODE_WORDS, statusWords } from "./status-words.js";

interface DemoState {
  internet: boolean;
  clinicServer: boolean;
}

// Typed against core's Tier rather than imported: the UI bundle takes only types from core.
const TIERS: readonly Tier[] = ["cloud", "clinic", "device"];

const TIER_WORDS: Record<Tier, string> = {
  cloud: "Nube",
  clinic: "Servidor de la clínica",
  device: "Este equipo",
};

const HEALTH_WORDS: Record<TierStatus["health"], string> = {
  up: "responde",
  suspect: "dudoso",
  down: "no responde",
  unknown: "sin comprobar",
};

const clockTime = (iso: string) =>
  new Intl.DateTimeFormat("es-MX", {
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    hourCycle: "h23",
  }).format(new Date(iso));

/** Demo mode only (the backend answers `/demo/state`): switches for the internet and the clinic server. */
export function DevPanel() {
  const [state, setState] = useState<DemoState | null>(null);
  const [version, setVersion] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const { refreshStatus, status } = useNetworkStatus();

  const read = useCallback(async () => {
    setState((await demoControl("state").catch(() => null)) as DemoState | null);
  }, []);
  useEffect(() => {
    void read();
    invoke<{ version: string }>("get_app_info").then(
      (info) => setVersion(info.version),
      () => setVersion(null),
    );
  }, [read]);

  if (state === null) return null;
  const flip = async (path: string) => {
    try {
      await demoControl(path);
      await read();
      await refreshStatus();
      setError(null);
    } catch (e) {
      setError(errorText(e));
    }
  };

  return (
    <section className="dev-panel" aria-labelledby="dev-panel-title">
      <h2 id="dev-panel-title">Panel de desarrollador (demostración)</h2>
      <div className="dev-buttons">
        <button type="button" onClick={() => void flip(state.internet ? "internet/off" : "internet/on")}>
          {state.internet ? "Cortar internet" : "Restaurar internet"}
        </button>
        <button
          type="button"
          onClick={() => void flip(state.clinicServer ? "clinic-server/off" : "clinic-server/on")}
        >
          {state.clinicServer ? "Detener servidor de la clínica" : "Arrancar servidor de la clínica"}
        </button>
      </div>
      <p data-testid="dev-state">
        Internet: {state.internet ? "sí" : "no"} · Servidor de la clínica: {state.clinicServer ? "sí" : "no"}{" "}
        · Modo: {status === null ? "…" : MODE_WORDS[status.mode]}
      </p>
      {status !== null && (
        <>
          <p data-testid="dev-reason">Motivo: {statusWords(status.reason)}</p>
          <ul className="dev-tiers" data-testid="dev-tiers">
            {TIERS.map((tier) => {
              const t = status.tiers[tier];
              return (
                <li key={tier}>
                  {TIER_WORDS[tier]}: {HEALTH_WORDS[t.health]}
                  {t.latencyMs !== null && t.health === "up" && ` (${Math.round(t.latencyMs)} ms)`}
                  {t.lastError !== null && t.health !== "up" && ` — ${statusWords(t.lastError)}`}
                </li>
              );
            })}
          </ul>
          <p>
            Cambios pendientes: {status.pendingChanges} · Última sincronización:{" "}
            {status.lastSyncAt === null ? "ninguna todavía" : clockTime(status.lastSyncAt)} · Sincronizando:{" "}
            {status.isSyncing ? "sí" : "no"}
          </p>
        </>
      )}
      {version !== null && <p data-testid="dev-version">Versión {version}</p>}
      <ErrorAlert error={error} />
    </section>
  );
}
