import { ConflictReview, DoubleBookingReview, type SyncConflict } from "@centrovision/ui-react";
import { useCallback, useEffect, useState } from "react";
import type { DoubleBookingView } from "../backend/double-bookings.js";
import { ErrorAlert } from "./error-alert.js";
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

const OPEN = { status: "open" };

/**
 * A list the backend answers, read when shown and again by `load`; its failure, in words, in
 * `error`. `args` must keep its identity across renders (a constant).
 */
function useListed<T>(command: string, args?: Record<string, unknown>) {
  const [items, setItems] = useState<T[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const load = useCallback(async () => {
    try {
      setItems(await invoke<T[]>(command, args));
      setError(null);
    } catch (e) {
      setError(errorText(e));
    }
  }, [command, args]);
  useEffect(() => {
    void load();
  }, [load]);
  return { items, error, setError, load };
}

/** Edits made on two tiers at once, both versions side by side (keep one or merge), and offline changes a server refused. */
export function ConflictsView() {
  const { items: conflicts, error, load } = useListed<SyncConflict>("list_conflicts", OPEN);

  return (
    <main className="card">
      <h2>Conflictos por revisar</h2>
      <ErrorAlert error={error} />
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
      <DoubleBookings />
      <DeadLetters />
    </main>
  );
}

/** Bookings made here offline that clashed, when they reached the server, with one made meanwhile. */
function DoubleBookings() {
  const { items, error, load } = useListed<DoubleBookingView>("list_double_bookings");

  return (
    <section aria-labelledby="double-bookings-title">
      <h2 id="double-bookings-title">Citas dobles por revisar</h2>
      <ErrorAlert error={error} />
      {items === null ? null : items.length === 0 ? (
        <p>Ninguna cita agendada sin conexión se empalmó con otra.</p>
      ) : (
        items.map((item) => (
          <DoubleBookingReview
            key={`${item.booking_id}:${item.other_id}`}
            booked={item.booked}
            existing={item.existing}
            shared={item.shared}
            {...(item.time_zone !== null && { timeZone: item.time_zone })}
            resolve={(choice) =>
              invoke("settle_double_booking", {
                booking_id: item.booking_id,
                other_id: item.other_id,
                choice,
              })
            }
            onResolved={() => void load()}
          />
        ))
      )}
    </section>
  );
}

interface DeadLetter {
  table: string;
  id: string;
  op: "upsert" | "delete";
  code: string;
  message: string;
  failedAt: string;
}

const TABLE_LABELS: Record<string, string> = {
  patients: "Paciente",
  appointments: "Cita",
  encounters: "Consulta",
  exam_eye: "Exploración",
  diagnoses: "Diagnóstico",
};

/** Changes made offline that a server refused for good: they wait here instead of blocking the rest. */
function DeadLetters() {
  const { items, error, setError, load } = useListed<DeadLetter>("list_dead_letters");
  const letters = items ?? [];

  const act = async (command: "retry_dead_letter" | "discard_dead_letter", letter: DeadLetter) => {
    try {
      await invoke(command, { table: letter.table, id: letter.id });
      await load();
    } catch (e) {
      setError(errorText(e));
    }
  };

  return (
    <section aria-labelledby="dead-letters-title">
      <h2 id="dead-letters-title">Cambios rechazados por el servidor</h2>
      <ErrorAlert error={error} />
      {letters.length === 0 ? (
        <p>Ningún cambio hecho sin conexión fue rechazado.</p>
      ) : (
        <ul>
          {letters.map((letter) => (
            <li key={`${letter.table}:${letter.id}`}>
              {TABLE_LABELS[letter.table] ?? letter.table} ({letter.op === "delete" ? "borrado" : "cambio"}):{" "}
              {letter.message}{" "}
              <button type="button" onClick={() => void act("retry_dead_letter", letter)}>
                Reintentar
              </button>{" "}
              <button type="button" onClick={() => void act("discard_dead_letter", letter)}>
                Descartar mi cambio
              </button>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
