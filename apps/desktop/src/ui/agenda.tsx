import { ChevronLeft, ChevronRight } from "lucide-react";
import type { Loaded } from "./agenda-data.js";
import { DayGrid } from "./day-grid.js";
import { ErrorAlert } from "./error-alert.js";
import {
  type AgendaItem,
  addDays,
  type Branch,
  dayHeading,
  minutesIn,
  type Staff,
  todayIn,
} from "./types.js";

interface AgendaProps {
  branch: Branch;
  date: string;
  onDate: (date: string) => void;
  day: Loaded<AgendaItem[]>;
  staff: Staff | null;
  now: Date;
  onPickSlot: (time: string, doctorId: string | null) => void;
  onCheckIn: (item: AgendaItem) => void;
}

/**
 * One branch's day: the date said in words, previous/next/today, and the time grid. Until the
 * day asked for has answered it says "Cargando…": rows of another day or branch are never shown
 * under this heading.
 */
export function Agenda({ branch, date, onDate, day, staff, now, onPickSlot, onCheckIn }: AgendaProps) {
  const today = todayIn(branch.timezone);
  const items = day.value;
  const count = items?.filter((i) => i.status !== "cancelled").length ?? 0;
  return (
    <section className="card agenda" aria-labelledby="agenda-title">
      <div className="agenda-header">
        <h2 id="agenda-title" data-testid="agenda-heading">
          {dayHeading(date, branch.timezone)}
          {date === today && <span className="today-mark"> (hoy)</span>}
          <span className="muted"> · {branch.name}</span>
        </h2>
        <div className="day-nav">
          <button type="button" onClick={() => onDate(addDays(date, -1))} aria-label="Día anterior">
            <ChevronLeft aria-hidden="true" size={18} /> Anterior
          </button>
          <button type="button" onClick={() => onDate(today)} disabled={date === today}>
            Hoy
          </button>
          <button type="button" onClick={() => onDate(addDays(date, 1))} aria-label="Día siguiente">
            Siguiente <ChevronRight aria-hidden="true" size={18} />
          </button>
          <label>
            <span className="visually-hidden">Ir a la fecha</span>
            <input
              data-testid="date"
              type="date"
              value={date}
              required
              onChange={(e) => e.target.value !== "" && onDate(e.target.value)}
            />
          </label>
        </div>
      </div>
      <ErrorAlert error={day.error} testId="agenda-error" />
      {items === null && day.error === null && (
        <p role="status" data-testid="agenda-loading">
          Cargando…
        </p>
      )}
      {items !== null && (
        <>
          <p className="muted" data-testid="agenda-count">
            {count === 0 ? "No hay citas este día." : count === 1 ? "1 cita." : `${count} citas.`}{" "}
            {date >= today && "Elija un horario libre para agendar."}
          </p>
          <DayGrid
            items={items}
            staff={staff}
            timeZone={branch.timezone}
            nowMinutes={date === today ? minutesIn(now.toISOString(), branch.timezone) : null}
            bookable={date >= today}
            arrivals={date === today}
            onPickSlot={onPickSlot}
            onCheckIn={onCheckIn}
          />
        </>
      )}
    </section>
  );
}
