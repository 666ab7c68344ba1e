import type { ConnectionMode } from "@centrovision/core";
import type { Branch } from "./types.js";

const UNAVAILABLE: Record<ConnectionMode, string> = {
  supabase: "no disponible ahora",
  local: "no disponible con el servidor de la clínica",
  offline: "no disponible sin conexión",
};

/** The option's text: the PC's own branch says so, a branch the current mode cannot serve says why. */
export function branchLabel(branch: Branch, mode: ConnectionMode): string {
  if (!branch.available) return `${branch.name} — ${UNAVAILABLE[mode]}`;
  return branch.home ? `${branch.name} (sucursal de este equipo)` : branch.name;
}

/** "Disponibles sin conexión: CentroVision Sur.", or null when every branch can be served. */
export function availabilityNote(branches: readonly Branch[], mode: ConnectionMode): string | null {
  if (branches.every((b) => b.available)) return null;
  const names = branches.filter((b) => b.available).map((b) => b.name);
  const where =
    mode === "offline" ? "sin conexión" : mode === "local" ? "con el servidor de la clínica" : "ahora";
  if (names.length === 0) return `Ninguna sucursal disponible ${where}.`;
  return names.length === 1
    ? `Disponible ${where}: solo ${names[0]}.`
    : `Disponibles ${where}: ${names.join(", ")}.`;
}

interface BranchPickerProps {
  branches: readonly Branch[];
  value: string;
  mode: ConnectionMode;
  onChange: (branchId: string) => void;
}

/**
 * The branch selector. Every branch is listed; one the current mode cannot serve stays visible,
 * marked and not selectable, so "not in this PC's copy" never reads as "does not exist".
 */
export function BranchPicker({ branches, value, mode, onChange }: BranchPickerProps) {
  const note = availabilityNote(branches, mode);
  return (
    <div className="branch-picker">
      <label>
        Sucursal{" "}
        <select
          data-testid="branch"
          value={value}
          onChange={(e) => onChange(e.target.value)}
          aria-describedby={note === null ? undefined : "branch-note"}
        >
          {value === "" && <option value="">Elija una sucursal</option>}
          {branches.map((b) => (
            <option key={b.id} value={b.id} disabled={!b.available && b.id !== value}>
              {branchLabel(b, mode)}
            </option>
          ))}
        </select>
      </label>
      {note !== null && (
        <span id="branch-note" className="branch-note" data-testid="branch-note">
          {note}
        </span>
      )}
    </div>
  );
}
