import type { ConflictResolution, SyncConflict } from "@centrovision/sync-engine";
import { useState } from "react";

/**
 * The state of one conflict's review: `submit` calls `resolve`, marks the review busy meanwhile
 * and done after, and keeps the failure's message for `ResolutionOutcome`.
 */
export function useResolution(
  conflict: SyncConflict,
  resolve: (id: string, resolution: ConflictResolution) => Promise<unknown>,
  onResolved: ((resolution: ConflictResolution) => void) | undefined,
) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState(false);

  const submit = async (resolution: ConflictResolution) => {
    setBusy(true);
    setError(null);
    try {
      await resolve(conflict.id, resolution);
      setDone(true);
      onResolved?.(resolution);
    } catch (cause) {
      setError(cause instanceof Error ? cause.message : "error desconocido");
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, done, submit };
}

/** What became of the reviewer's choice: the failure, in place, or that it is settled. */
export function ResolutionOutcome({ error, done }: { error: string | null; done: boolean }) {
  return (
    <>
      {error !== null && (
        <p role="alert" style={{ color: "#b91c1c" }}>
          No se pudo resolver el conflicto: {error}
        </p>
      )}
      {done && <p role="status">Conflicto resuelto.</p>}
    </>
  );
}
