import { ConflictReview, type SyncConflict } from "@centrovision/ui-react";
import { useCallback, useEffect, useState } from "react";
import { errorText, invoke } from "./invoke.js";

const COLUMN_LABELS = {
  status: "Estado",
  reason: "Motivo",
  starts_at: "Inicio",
  ends_at: "Fin",
  notes: "Notas",
  phone: "Teléfono",
  first_name: "Nombre",
  last_name: "Apellido",
};

/** Edits made on two tiers at once, both versions side by side; keep one or merge. */
export function ConflictsView() {
  const [conflicts, setConflicts] = useState<SyncConflict[] | null>(null);
  const [error, setError] = useState<string | null>(null);

  const load = useCallback(async () => {
    try {
      setConflicts(await invoke<SyncConflict[]>("list_conflicts", { status: "open" }));
      setError(null);
    } catch (e) {
      setError(errorText(e));
    }
  }, []);

  useEffect(() => {
    void load();
  }, [load]);

  return (
    <main className="card">
      <h2>Conflictos por revisar</h2>
      {error !== null && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
      {conflicts !== null && conflicts.length === 0 && <p>No hay conflictos abiertos.</p>}
      {conflicts?.map((conflict) => (
        <ConflictReview
          key={conflict.id}
          conflict={conflict}
          columnLabels={COLUMN_LABELS}
          resolve={(id, resolution) =>
            invoke(
              "resolve_conflict",
              "keep" in resolution
                ? { conflict_id: id, keep: resolution.keep }
                : { conflict_id: id, merged: resolution.merged },
            )
          }
          onResolved={() => void load()}
        />
      ))}
    </main>
  );
}
