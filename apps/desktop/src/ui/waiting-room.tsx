import { useNow } from "./agenda-data.js";
import { type AgendaItem, timeIn } from "./types.js";

interface WaitingRoomProps {
  items: AgendaItem[];
  timeZone: string;
  onCall: (item: AgendaItem) => void;
}

const waited = (since: string, now: Date): string => {
  const minutes = Math.max(0, Math.floor((now.getTime() - new Date(since).getTime()) / 60_000));
  return minutes === 1 ? "1 minuto" : `${minutes} minutos`;
};

/** Who has arrived and waits, longest wait first, with the time they arrived and the minutes since. */
export function WaitingRoom({ items, timeZone, onCall }: WaitingRoomProps) {
  const now = useNow();
  const waiting = items
    .filter((i) => i.status === "checked_in")
    .sort((a, b) => (a.checked_in_at ?? a.starts_at).localeCompare(b.checked_in_at ?? b.starts_at));
  return (
    <section className="card waiting-room" aria-labelledby="waiting-title" data-testid="waiting-room">
      <h2 id="waiting-title">Sala de espera ({waiting.length})</h2>
      {waiting.length === 0 ? (
        <p className="muted">Nadie espera en este momento.</p>
      ) : (
        <ul className="waiting-list">
          {waiting.map((item) => {
            const since = item.checked_in_at ?? item.starts_at;
            return (
              <li key={item.id} data-appointment-id={item.id}>
                <strong>{item.patient_name}</strong>
                <span className="muted">
                  {" "}
                  · cita {timeIn(item.starts_at, timeZone)}
                  {item.doctor_name !== null && ` con ${item.doctor_name}`}
                  {item.room_name !== null && ` · ${item.room_name}`}
                </span>
                <br />
                <span data-testid="waiting-since">
                  esperando desde {timeIn(since, timeZone)} ({waited(since, now)})
                </span>{" "}
                <button
                  type="button"
                  className="small"
                  aria-label={`Pasar a consulta a ${item.patient_name}`}
                  onClick={() => onCall(item)}
                >
                  Pasar a consulta
                </button>
              </li>
            );
          })}
        </ul>
      )}
    </section>
  );
}
