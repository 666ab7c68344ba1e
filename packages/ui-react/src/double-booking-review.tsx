import { useId } from "react";
import { ResolutionOutcome, useResolution } from "./internal/use-resolution.js";

type Row = Readonly<Record<string, unknown>>;

/** How a reviewer settles a double booking. */
export type DoubleBookingChoice = "keep_both" | "cancel_booked" | "cancel_existing";

export interface DoubleBookingReviewProps {
  /**
   * The appointment booked on this PC while it worked offline, as the agenda shows it
   * (`starts_at`, `ends_at`, `reason`, and `patient_name` / `doctor_name` / `room_name` when
   * known); null when it cannot be read now.
   */
  booked: Row | null;
  /** The appointment it clashed with when it reached the server; null when it cannot be read now. */
  existing: Row | null;
  /** What both hold at that time: `patient_id`, `doctor_id`, `room_id`. */
  shared: readonly string[];
  /** Settles it, e.g. `(choice) => invoke("settle_double_booking", { …ids, choice })`. A rejection is shown. */
  resolve: (choice: DoubleBookingChoice) => Promise<unknown>;
  /** Called after `resolve` succeeded. */
  onResolved?: (choice: DoubleBookingChoice) => void;
  /** The time zone to show times in (the branch's). Default: this computer's. */
  timeZone?: string;
}

const SHARED: Readonly<Record<string, string>> = {
  patient_id: "el paciente",
  doctor_id: "el médico",
  room_id: "el consultorio",
};

const listed = (names: readonly string[]) =>
  names.length <= 1 ? (names[0] ?? "") : `${names.slice(0, -1).join(", ")} y ${names.at(-1)}`;

function span(row: Row | null, timeZone: string | undefined): string {
  const starts = typeof row?.starts_at === "string" ? new Date(row.starts_at) : null;
  const ends = typeof row?.ends_at === "string" ? new Date(row.ends_at) : null;
  if (starts === null || ends === null || Number.isNaN(starts.getTime()) || Number.isNaN(ends.getTime()))
    return "—";
  const clock = { hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone } as const;
  const day = new Intl.DateTimeFormat("es-MX", { weekday: "long", day: "numeric", month: "long", ...clock });
  return `${day.format(starts)} a ${new Intl.DateTimeFormat("es-MX", clock).format(ends)}`;
}

const text = (value: unknown) => (typeof value === "string" && value !== "" ? value : "—");

/**
 * A booking made on this PC while it worked offline that, when it reached the server, clashed with
 * an appointment made meanwhile elsewhere. Both are in the agenda; the reviewer keeps both, or
 * cancels one. Nothing is written until `resolve` is called; its error is shown in place.
 */
export function DoubleBookingReview(props: DoubleBookingReviewProps) {
  const { booked, existing, shared, resolve, onResolved, timeZone } = props;
  const { busy, error, done, submit } = useResolution(resolve, onResolved);
  const titleId = useId();
  const who = shared.map((column) => SHARED[column] ?? column);
  const disabled = busy || done;
  const patient = (row: Row | null) => text(row?.patient_name);
  return (
    <section aria-labelledby={titleId} aria-busy={busy}>
      <h3 id={titleId}>Cita doble por revisar</h3>
      <p>
        Esta cita se agendó sin conexión y, al llegar al servidor, {listed(who) || "la agenda"} ya
        {who.length > 1 ? " tenían" : " tenía"} otra cita a esa hora. Las dos siguen en la agenda hasta que
        decida.
      </p>
      <table>
        <thead>
          <tr>
            <th scope="col">Cita</th>
            <th scope="col">Paciente</th>
            <th scope="col">Horario</th>
            <th scope="col">Médico</th>
            <th scope="col">Consultorio</th>
            <th scope="col">Motivo</th>
          </tr>
        </thead>
        <tbody>
          {(
            [
              ["Agendada sin conexión", booked],
              ["La que ya existía", existing],
            ] as const
          ).map(([label, row]) => (
            <tr key={label}>
              <th scope="row">{label}</th>
              <td>{patient(row)}</td>
              <td>{span(row, timeZone)}</td>
              <td>{text(row?.doctor_name)}</td>
              <td>{text(row?.room_name)}</td>
              <td>{text(row?.reason)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <div style={{ display: "flex", gap: "0.5em", marginTop: "0.75em", flexWrap: "wrap" }}>
        <button type="button" disabled={disabled} onClick={() => void submit("keep_both")}>
          Mantener ambas citas
        </button>
        <button type="button" disabled={disabled} onClick={() => void submit("cancel_booked")}>
          Cancelar la cita de {patient(booked)} agendada sin conexión
        </button>
        <button type="button" disabled={disabled} onClick={() => void submit("cancel_existing")}>
          Cancelar la cita de {patient(existing)} que ya existía
        </button>
      </div>
      <ResolutionOutcome
        error={error}
        done={done}
        failed="No se pudo resolver la cita doble"
        settled="Cita doble resuelta."
      />
    </section>
  );
}
