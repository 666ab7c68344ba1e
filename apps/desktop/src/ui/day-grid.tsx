import type { CSSProperties } from "react";
import {
  type AgendaItem,
  clock,
  minutesIn,
  STATUS_LABELS,
  type Staff,
  TYPE_LABELS,
  timeIn,
} from "./types.js";

/** The grid's row: half an hour, the unit a receptionist books in (any minute can still be typed). */
const SLOT_MINUTES = 30;
const DAY_START = 8 * 60;
const DAY_END = 20 * 60;
/** Statuses that no longer hold the slot: the slot can be booked again. */
const FREEING = new Set<AgendaItem["status"]>(["cancelled", "no_show"]);
export const CAN_CHECK_IN = new Set<AgendaItem["status"]>(["scheduled", "confirmed"]);

/** A column of the grid: a doctor, or the appointments without one (`doctorId` null). */
interface Column {
  readonly doctorId: string | null;
  readonly name: string;
  readonly items: AgendaItem[];
}

interface Placed {
  readonly item: AgendaItem;
  readonly start: number;
  readonly end: number;
  lane: number;
  lanes: number;
}

export interface DayGridProps {
  items: AgendaItem[];
  staff: Staff | null;
  timeZone: string;
  /** Minutes since midnight now, when the day shown is today (earlier slots are not offered); else null. */
  nowMinutes: number | null;
  /** False for a day already past: no slot is offered. */
  bookable: boolean;
  /** True for today only: patients arrive on the day of their appointment. */
  arrivals: boolean;
  onPickSlot: (time: string, doctorId: string | null) => void;
  onCheckIn: (item: AgendaItem) => void;
}

function columnsOf(items: AgendaItem[], staff: Staff | null): Column[] {
  const doctors = new Map<string, string>((staff?.doctors ?? []).map((d) => [d.id, d.full_name]));
  // A doctor booked here but no longer in the branch's staff still gets a column: no appointment is hidden.
  for (const item of items) {
    if (item.doctor_id !== null && !doctors.has(item.doctor_id)) {
      doctors.set(item.doctor_id, item.doctor_name ?? "Médico");
    }
  }
  return [
    ...[...doctors].map(([id, name]) => ({
      doctorId: id,
      name,
      items: items.filter((i) => i.doctor_id === id),
    })),
    { doctorId: null, name: "Sin médico asignado", items: items.filter((i) => i.doctor_id === null) },
  ];
}

/** Side by side when they overlap: each appointment gets a lane within its group of overlapping ones. */
function place(items: AgendaItem[], timeZone: string): Placed[] {
  const placed = items
    .map((item) => {
      const start = minutesIn(item.starts_at, timeZone);
      const end = Math.max(start + 10, minutesIn(item.ends_at, timeZone) || 24 * 60);
      return { item, start, end, lane: 0, lanes: 1 };
    })
    .sort((a, b) => a.start - b.start || a.end - b.end);
  let group: Placed[] = [];
  let groupEnd = -1;
  const close = () => {
    const lanes = Math.max(1, ...group.map((p) => p.lane + 1));
    for (const p of group) p.lanes = lanes;
  };
  for (const p of placed) {
    if (p.start >= groupEnd) {
      close();
      group = [];
    }
    const taken = new Set(group.filter((g) => g.end > p.start).map((g) => g.lane));
    while (taken.has(p.lane)) p.lane += 1;
    group.push(p);
    groupEnd = Math.max(groupEnd, p.end);
  }
  close();
  return placed;
}

const at = (minutes: number, from: number): string =>
  `calc(var(--slot-height) * ${(minutes - from) / SLOT_MINUTES})`;

/**
 * The day as a time grid: one column per doctor of the branch and one for appointments without a
 * doctor, half-hour rows from 08:00 to 20:00 (wider when an appointment falls outside). An empty
 * slot is a button that starts a booking at that time with that doctor.
 */
export function DayGrid({
  items,
  staff,
  timeZone,
  nowMinutes,
  bookable,
  arrivals,
  onPickSlot,
  onCheckIn,
}: DayGridProps) {
  const columns = columnsOf(items, staff);
  const times = items.flatMap((i) => [minutesIn(i.starts_at, timeZone), minutesIn(i.ends_at, timeZone)]);
  const from = Math.min(DAY_START, ...times.map((t) => Math.floor(t / 60) * 60));
  const to = Math.max(DAY_END, ...times.map((t) => Math.ceil(t / 60) * 60));
  const slots = Array.from({ length: (to - from) / SLOT_MINUTES }, (_, n) => from + n * SLOT_MINUTES);
  const style = { "--columns": columns.length, "--rows": slots.length } as CSSProperties;

  return (
    <div className="scheduler" style={style} data-testid="agenda">
      <div className="scheduler-times" aria-hidden="true">
        <div className="scheduler-corner" />
        {slots.map((minutes) => (
          <div key={minutes} className="scheduler-time">
            {clock(minutes)}
          </div>
        ))}
      </div>
      {columns.map((column) => {
        const headingId = `doctor-${column.doctorId ?? "none"}`;
        const placed = place(column.items, timeZone);
        const holding = placed.filter((p) => !FREEING.has(p.item.status));
        const free = slots.filter(
          (s) =>
            bookable &&
            (nowMinutes === null || s + SLOT_MINUTES > nowMinutes) &&
            !holding.some((p) => p.start < s + SLOT_MINUTES && p.end > s),
        );
        // Time order, so a keyboard or a screen reader goes through the day as it is drawn.
        const entries: { minutes: number; placed: Placed | null }[] = [
          ...free.map((s) => ({ minutes: s, placed: null })),
          ...placed.map((p) => ({ minutes: p.start, placed: p })),
        ].sort((a, b) => a.minutes - b.minutes);
        const doctor = column.doctorId === null ? "sin médico asignado" : `con ${column.name}`;
        return (
          <section
            key={headingId}
            className="scheduler-column"
            aria-labelledby={headingId}
            data-testid="agenda-column"
          >
            <h3 id={headingId} className="scheduler-doctor">
              {column.name}
            </h3>
            <div className="scheduler-track">
              {nowMinutes !== null && nowMinutes >= from && nowMinutes <= to && (
                <div className="scheduler-now" style={{ top: at(nowMinutes, from) }} aria-hidden="true" />
              )}
              {entries.map((entry) =>
                entry.placed === null ? (
                  <button
                    key={`slot-${entry.minutes}`}
                    type="button"
                    className="scheduler-slot"
                    style={{ top: at(entry.minutes, from) }}
                    aria-label={`Agendar a las ${clock(entry.minutes)} ${doctor}`}
                    onClick={() => onPickSlot(clock(entry.minutes), column.doctorId)}
                  >
                    <span aria-hidden="true">+ {clock(entry.minutes)}</span>
                  </button>
                ) : (
                  <AppointmentBlock
                    key={entry.placed.item.id}
                    placed={entry.placed}
                    from={from}
                    timeZone={timeZone}
                    onCheckIn={arrivals ? onCheckIn : null}
                  />
                ),
              )}
            </div>
          </section>
        );
      })}
    </div>
  );
}

interface BlockProps {
  placed: Placed;
  from: number;
  timeZone: string;
  /** Null when arrivals are not recorded on this day. */
  onCheckIn: ((item: AgendaItem) => void) | null;
}

function AppointmentBlock({ placed, from, timeZone, onCheckIn }: BlockProps) {
  const { item, start, end, lane, lanes } = placed;
  const time = `${timeIn(item.starts_at, timeZone)}–${timeIn(item.ends_at, timeZone)}`;
  // The height as a variable, so a hovered or focused block can grow to show all it holds.
  const style = {
    top: at(start, from),
    "--block-height": `calc(var(--slot-height) * ${(end - start) / SLOT_MINUTES} - 2px)`,
    left: `${(lane / lanes) * 100}%`,
    width: `${100 / lanes}%`,
  } as CSSProperties;
  return (
    <article
      className={`appointment status-${item.status}`}
      style={style}
      data-appointment-id={item.id}
      data-testid="appointment"
      aria-label={`${time}, ${item.patient_name}`}
      title={`${time} · ${item.patient_name} · ${TYPE_LABELS[item.type]} · ${item.reason}${item.room_name ? ` · ${item.room_name}` : ""}`}
    >
      <p className="appointment-line">
        <span className="appointment-time">{timeIn(item.starts_at, timeZone)}</span>{" "}
        <strong>{item.patient_name}</strong>
      </p>
      <p className="appointment-line appointment-detail">
        {item.reason}
        {item.room_name !== null && ` · ${item.room_name}`}
      </p>
      <p className="appointment-line appointment-actions">
        <span className={`chip chip-${item.status}`} data-testid="status">
          {STATUS_LABELS[item.status]}
        </span>
        {onCheckIn !== null && CAN_CHECK_IN.has(item.status) && (
          <button
            type="button"
            className="small"
            aria-label={`Registrar llegada de ${item.patient_name}`}
            onClick={() => onCheckIn(item)}
          >
            Registrar llegada
          </button>
        )}
      </p>
    </article>
  );
}
