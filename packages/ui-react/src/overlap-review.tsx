import { useId } from "react";
import type { ConflictReviewProps } from "./conflict-review.js";
import { ResolutionOutcome, useResolution } from "./internal/use-resolution.js";

type Row = Readonly<Record<string, unknown>>;

/** Who holds both slots, as the conflict's `columns` name them. */
const SHARED: Readonly<Record<string, string>> = {
  patient_id: "el paciente",
  doctor_id: "el médico",
  room_id: "el consultorio",
};

const WHEN = new Intl.DateTimeFormat("es-MX", {
  weekday: "long",
  day: "numeric",
  month: "long",
  hour: "2-digit",
  minute: "2-digit",
  hourCycle: "h23",
});
const UNTIL = new Intl.DateTimeFormat("es-MX", { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });

function span(row: Row | null): string {
  const starts = typeof row?.starts_at === "string" ? new Date(row.starts_at) : null;
  const ends = typeof row?.ends_at === "string" ? new Date(row.ends_at) : null;
  if (starts === null || ends === null || Number.isNaN(starts.getTime()) || Number.isNaN(ends.getTime()))
    return "—";
  return `${WHEN.format(starts)} a ${UNTIL.format(ends)}`;
}

const listed = (names: readonly string[]) =>
  names.length <= 1 ? (names[0] ?? "") : `${names.slice(0, -1).join(", ")} y ${names.at(-1)}`;

/**
 * A double booking found when a PC's offline changes reached the server: both appointments are
 * in the agenda. The reviewer keeps both, or cancels one of them.
 */
export function OverlapReview({ conflict, resolve, onResolved }: ConflictReviewProps) {
  const { busy, error, done, submit } = useResolution(conflict, resolve, onResolved);
  const titleId = useId();
  const shared = (conflict.columns ?? []).map((column) => SHARED[column] ?? column);
  const disabled = busy || done;
  return (
    <section aria-labelledby={titleId} aria-busy={busy}>
      <h2 id={titleId}>Cita doble por revisar</h2>
      <p>
        Esta cita se agendó sin conexión y, al enviarse al servidor, {listed(shared) || "la agenda"} ya{" "}
        {shared.length > 1 ? "tenían" : "tenía"} otra cita a esa hora. Las dos siguen en la agenda hasta que
        decida.
      </p>
      <table>
        <thead>
          <tr>
            <th scope="col">Cita</th>
            <th scope="col">Horario</th>
            <th scope="col">Motivo</th>
          </tr>
        </thead>
        <tbody>
          <tr>
            <th scope="row">Agendada sin conexión</th>
            <td>{span(conflict.localRow)}</td>
            <td>{String(conflict.localRow?.reason ?? "—")}</td>
          </tr>
          <tr>
            <th scope="row">La que ya existía</th>
            <td>{span(conflict.remoteRow)}</td>
            <td>{String(conflict.remoteRow?.reason ?? "—")}</td>
          </tr>
        </tbody>
      </table>
      <div style={{ display: "flex", gap: "0.5em", marginTop: "0.75em", flexWrap: "wrap" }}>
        <button type="button" disabled={disabled} onClick={() => void submit({ keep: "both" })}>
          Mantener ambas citas
        </button>
        <button type="button" disabled={disabled} onClick={() => void submit({ keep: "remote" })}>
          Cancelar la cita agendada sin conexión
        </button>
        <button type="button" disabled={disabled} onClick={() => void submit({ keep: "local" })}>
          Cancelar la cita que ya existía
        </button>
      </div>
      <ResolutionOutcome error={error} done={done} />
    </section>
  );
}
