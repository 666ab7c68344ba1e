import { useNetworkStatus } from "@centrovision/ui-react";
import { useCallback, useEffect, useState } from "react";
import { demoControl, errorText } from "./invoke.js";

interface DemoState {
  internet: boolean;
  clinicServer: boolean;
}

/** Demo mode only (the backend answers `/demo/state`): switches for the internet and the clinic server. */
export function DevPanel() {
  const [state, setState] = useState<DemoState | null>(null);
  const [error, setError] = useState<string | null>(null);
  const { refreshStatus, status } = useNetworkStatus();

  const read = useCallback(async () => {
    setState((await demoControl("state").catch(() => null)) as DemoState | null);
  }, []);
  useEffect(() => {
    void read();
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
    <section className="dev-panel" aria-label="Panel de desarrollador">
      <h2>Panel de desarrollador (demo)</h2>
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
        · Modo: {status?.mode ?? "…"} · {status?.reason ?? ""}
      </p>
      {error !== null && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
    </section>
  );
}
