import { useCallback, useEffect, useState } from "react";
import { errorText, invoke } from "./invoke.js";
import { type AgendaItem, type Branch, STATUS_LABELS, TYPE_LABELS, timeIn } from "./types.js";

interface AgendaProps {
  branch: Branch;
  date: string;
  /** Bumped by the parent after a change elsewhere (a new appointment). */
  version: number;
}

const CAN_CHECK_IN = new Set<AgendaItem["status"]>(["scheduled", "confirmed"]);

/** The day's agenda of one branch, with check-in. Re-read every few seconds: other PCs book too. */
export function Agenda({ branch, date, version }: AgendaProps) {
  const [items, setItems] = useState<AgendaItem[] | null>(null);
  const [error, setError] = useState<string | null>(null);

  const load = useCallback(async () => {
    try {
      setItems(await invoke<AgendaItem[]>("get_appointments", { branch_id: branch.id, date }));
      setError(null);
    } catch (e) {
      setError(errorText(e));
    }
  }, [branch.id, date]);

  useEffect(() => {
    void version;
    void load();
    const timer = setInterval(() => void load(), 5_000);
    return () => clearInterval(timer);
  }, [load, version]);

  const checkIn = async (id: string) => {
    try {
      await invoke("update_appointment_status", { appointment_id: id, status: "checked_in" });
      await load();
    } catch (e) {
      setError(errorText(e));
    }
  };

  return (
    <div>
      <h2>
        Agenda del {date} — {branch.name}
      </h2>
      {error !== null && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
      {items === null ? (
        <p>Cargando…</p>
      ) : items.length === 0 ? (
        <p>No hay citas este día.</p>
      ) : (
        <table className="agenda" data-testid="agenda">
          <thead>
            <tr>
              <th>Hora</th>
              <th>Paciente</th>
              <th>Motivo</th>
              <th>Tipo</th>
              <th>Estado</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {items.map((item) => (
              <tr key={item.id} data-appointment-id={item.id}>
                <td>{timeIn(item.starts_at, branch.timezone)}</td>
                <td>{item.patient_name}</td>
                <td>{item.reason}</td>
                <td>{TYPE_LABELS[item.type]}</td>
                <td data-testid="status">{STATUS_LABELS[item.status]}</td>
                <td>
                  {CAN_CHECK_IN.has(item.status) && (
                    <button type="button" onClick={() => void checkIn(item.id)}>
                      Registrar llegada
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
