import { useNetworkStatus } from "@centrovision/ui-react";

const changes = (n: number, one: string, many: string): string => (n === 1 ? `1 ${one}` : `${n} ${many}`);

/**
 * Says in words, on screen and not only in the status pill, when the PC is not working on the
 * cloud and how many changes wait. Not a live region: the pending count changes often, and the
 * indicator already announces the switch to offline once.
 */
export function ModeBanner() {
  const { ready, connectionMode, syncStatus } = useNetworkStatus();
  if (!ready || connectionMode === "supabase") return null;
  const pending = syncStatus.pendingChanges;
  return (
    <section
      className={`banner mode-banner mode-${connectionMode}`}
      aria-label="Modo de trabajo"
      data-testid="mode-banner"
    >
      {connectionMode === "local"
        ? `Trabajando con el servidor de la clínica — ${changes(pending, "cambio se enviará", "cambios se enviarán")} a la nube`
        : `Sin conexión: trabajando en este equipo — ${changes(pending, "cambio pendiente", "cambios pendientes")}; puede seguir trabajando`}
    </section>
  );
}
