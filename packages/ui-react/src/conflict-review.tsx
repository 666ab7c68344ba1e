import type { ConflictResolution, SyncConflict } from "@centrovision/core/shared";
import { useId, useState } from "react";
import { SR_ONLY } from "./internal/sr-only.js";
import { ResolutionOutcome, useResolution } from "./internal/use-resolution.js";

/** Sync bookkeeping every row carries; a reviewer picks among the clinical columns only. */
const META_COLUMNS = new Set([
  "id",
  "created_at",
  "updated_at",
  "version",
  "base_version",
  "created_by",
  "updated_by",
]);

type Row = Readonly<Record<string, unknown>>;
type Side = "local" | "remote";

export interface ConflictReviewProps {
  conflict: SyncConflict;
  /** Settles the conflict, e.g. `(id, r) => invoke("resolve_conflict", { id, resolution: r })`. A rejection is shown. */
  resolve: (id: string, resolution: ConflictResolution) => Promise<unknown>;
  /** Called after `resolve` succeeded. */
  onResolved?: (resolution: ConflictResolution) => void;
  /** Spanish names for columns (`{ iop_od: "PIO OD" }`); the column name is shown otherwise. */
  columnLabels?: Readonly<Record<string, string>>;
}

function formatValue(value: unknown): string {
  if (value === null || value === undefined) return "(vacío)";
  if (typeof value === "boolean") return value ? "Sí" : "No";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function reviewedColumns(local: Row | null, remote: Row | null): string[] {
  const names = new Set([...Object.keys(local ?? {}), ...Object.keys(remote ?? {})]);
  return [...names].filter((name) => !META_COLUMNS.has(name));
}

function differs(local: Row | null, remote: Row | null, column: string): boolean {
  if (local === null || remote === null) return true;
  return JSON.stringify(local[column] ?? null) !== JSON.stringify(remote[column] ?? null);
}

const CHANGED_CELL = { background: "#fef3c7", fontWeight: 600 } as const;

/**
 * Both versions of a row edited on two nodes, side by side, with the differing columns marked.
 * The reviewer keeps one version or merges by picking a side per differing column; nothing is
 * written until `resolve` is called, and its error is shown in place.
 */
export function ConflictReview({ conflict, resolve, onResolved, columnLabels = {} }: ConflictReviewProps) {
  const { localRow, remoteRow } = conflict;
  const columns = reviewedColumns(localRow, remoteRow);
  const changed = columns.filter((column) => differs(localRow, remoteRow, column));
  const defaultSide: Side = conflict.winner === "remote" ? "remote" : "local";
  const [picks, setPicks] = useState<Readonly<Record<string, Side>>>({});
  const { busy, error, done, submit } = useResolution(
    (resolution: ConflictResolution) => resolve(conflict.id, resolution),
    onResolved,
  );
  const titleId = useId();
  const canMerge = localRow !== null && remoteRow !== null;
  const pickOf = (column: string): Side => picks[column] ?? defaultSide;

  const merge = () => {
    const merged: Record<string, unknown> = { ...localRow };
    for (const column of changed)
      if (pickOf(column) === "remote") merged[column] = remoteRow?.[column] ?? null;
    void submit({ merged });
  };

  const disabled = busy || done;
  const label = (column: string) => columnLabels[column] ?? column;
  return (
    <section aria-labelledby={titleId} aria-busy={busy}>
      <h2 id={titleId}>Conflicto en {conflict.table}</h2>
      <p>
        Dos personas editaron el mismo registro. {changed.length} campo{changed.length === 1 ? "" : "s"} con
        valores distintos. Motivo: {conflict.reason}
      </p>
      <table>
        <thead>
          <tr>
            <th scope="col">Campo</th>
            <th scope="col">Versión local{localRow === null && " (eliminada)"}</th>
            <th scope="col">Versión remota{remoteRow === null && " (eliminada)"}</th>
            {canMerge && <th scope="col">Usar al combinar</th>}
          </tr>
        </thead>
        <tbody>
          {columns.map((column) => {
            const isChanged = changed.includes(column);
            const style = isChanged ? CHANGED_CELL : undefined;
            return (
              <tr key={column} data-changed={isChanged || undefined}>
                <th scope="row">
                  {label(column)}
                  {isChanged && <span> (distinto)</span>}
                </th>
                <td style={style}>{localRow === null ? "—" : formatValue(localRow[column])}</td>
                <td style={style}>{remoteRow === null ? "—" : formatValue(remoteRow[column])}</td>
                {canMerge && (
                  <td>
                    {isChanged && (
                      <fieldset style={{ border: 0, padding: 0, margin: 0 }}>
                        <legend style={SR_ONLY}>Valor de {label(column)} al combinar</legend>
                        {(["local", "remote"] as const).map((side) => (
                          <label key={side} style={{ marginRight: "0.75em" }}>
                            <input
                              type="radio"
                              name={`${titleId}-${column}`}
                              value={side}
                              checked={pickOf(column) === side}
                              disabled={disabled}
                              onChange={() => setPicks((current) => ({ ...current, [column]: side }))}
                            />{" "}
                            {side === "local" ? "Local" : "Remota"}
                          </label>
                        ))}
                      </fieldset>
                    )}
                  </td>
                )}
              </tr>
            );
          })}
        </tbody>
      </table>
      <div style={{ display: "flex", gap: "0.5em", marginTop: "0.75em" }}>
        <button type="button" disabled={disabled} onClick={() => void submit({ keep: "local" })}>
          Conservar versión local
        </button>
        <button type="button" disabled={disabled} onClick={() => void submit({ keep: "remote" })}>
          Conservar versión remota
        </button>
        {canMerge && (
          <button type="button" disabled={disabled} onClick={merge}>
            Combinar selección
          </button>
        )}
      </div>
      <ResolutionOutcome
        error={error}
        done={done}
        failed="No se pudo resolver el conflicto"
        settled="Conflicto resuelto."
      />
    </section>
  );
}
