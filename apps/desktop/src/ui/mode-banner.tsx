import type { TableName } from "@centrovision/core";
import { useNetworkStatus } from "@centrovision/ui-react";
import { counted, listed } from "./words.js";

/** Each table's rows as a receptionist names them, singular and plural, the agenda's first. */
const ROW_WORDS: readonly (readonly [TableName, string, string])[] = [
  ["appointments", "cita", "citas"],
  ["patients", "paciente", "pacientes"],
  ["encounters", "consulta", "consultas"],
  ["exam_eye", "examen de un ojo", "exámenes de un ojo"],
  ["diagnoses", "diagnóstico", "diagnósticos"],
  ["rooms", "sala", "salas"],
  ["profiles", "persona del personal", "personas del personal"],
  ["branches", "sucursal", "sucursales"],
  ["user_roles", "rol del personal", "roles del personal"],
  ["user_branches", "asignación a una sucursal", "asignaciones a sucursales"],
];

/**
 * What the PC's offline copy lacks, in one sentence ("No se pudieron copiar a este equipo 2 citas
 * y 1 paciente: …"), or null when it lacks nothing it knows of.
 */
export function notInCopyWords(notInCopy: Readonly<Partial<Record<TableName, number>>> = {}): string | null {
  const parts = ROW_WORDS.flatMap(([table, one, many]) => {
    const n = notInCopy[table] ?? 0;
    return n > 0 ? [counted(n, one, many)] : [];
  });
  if (parts.length === 0) return null;
  return `No se pudieron copiar a este equipo ${listed(parts)}: lo que se ve sin conexión puede estar incompleto.`;
}

/**
 * Says in words, on screen and not only in the status pill, when the PC is not working on the
 * cloud and how many changes wait; offline, also what its copy lacks (the agenda shown may miss
 * those appointments). Not a live region: the pending count changes often, and the indicator
 * already announces the switch to offline once.
 */
export function ModeBanner() {
  const { ready, connectionMode, syncStatus, status } = useNetworkStatus();
  if (!ready || connectionMode === "supabase") return null;
  const pending = syncStatus.pendingChanges;
  const missing = connectionMode === "offline" ? notInCopyWords(status?.notInCopy) : null;
  return (
    <section
      className={`banner mode-banner mode-${connectionMode}`}
      aria-label="Modo de trabajo"
      data-testid="mode-banner"
    >
      {connectionMode === "local"
        ? `Trabajando con el servidor de la clínica — ${counted(pending, "cambio se enviará", "cambios se enviarán")} a la nube`
        : `Sin conexión: trabajando en este equipo — ${counted(pending, "cambio pendiente", "cambios pendientes")}; puede seguir trabajando`}
      {missing !== null && (
        <>
          {". "}
          <span data-testid="not-in-copy">{missing}</span>
        </>
      )}
    </section>
  );
}
