import { type FormEvent, useState } from "react";
import { errorText, invoke } from "./invoke.js";
import { type AgendaItem, type Branch, offsetOn, type Patient, TYPE_LABELS } from "./types.js";

const TYPES = Object.keys(TYPE_LABELS) as AgendaItem["type"][];

interface AppointmentFormProps {
  branch: Branch;
  date: string;
  patient: Patient | null;
  onCreated: () => void;
}

/** A new appointment for the selected patient on the agenda's day. */
export function AppointmentForm({ branch, date, patient, onCreated }: AppointmentFormProps) {
  const [time, setTime] = useState("18:00");
  const [reason, setReason] = useState("");
  const [type, setType] = useState<AgendaItem["type"]>("follow_up");
  const [duration, setDuration] = useState(30);
  const [message, setMessage] = useState<{ kind: "ok" | "error"; text: string } | null>(null);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    if (patient === null) {
      setMessage({ kind: "error", text: "Seleccione primero un paciente con la búsqueda." });
      return;
    }
    try {
      await invoke("create_appointment", {
        branch_id: branch.id,
        patient_id: patient.id,
        starts_at: `${date}T${time}:00${offsetOn(date, branch.timezone)}`,
        duration_minutes: duration,
        reason,
        type,
      });
      setMessage({ kind: "ok", text: "Cita registrada." });
      setReason("");
      onCreated();
    } catch (e) {
      setMessage({ kind: "error", text: errorText(e) });
    }
  };

  return (
    <section className="card">
      <h2>Nueva cita</h2>
      <form className="form" onSubmit={(e) => void submit(e)} data-testid="appointment-form">
        <label>
          Hora{" "}
          <input
            type="time"
            value={time}
            onChange={(e) => setTime(e.target.value)}
            data-testid="appointment-time"
          />
        </label>
        <label>
          Duración (min)
          <input
            type="number"
            min={5}
            max={480}
            value={duration}
            onChange={(e) => setDuration(Number(e.target.value))}
          />
        </label>
        <label>
          Motivo
          <input
            value={reason}
            onChange={(e) => setReason(e.target.value)}
            data-testid="appointment-reason"
          />
        </label>
        <label>
          Tipo
          <select value={type} onChange={(e) => setType(e.target.value as typeof type)}>
            {TYPES.map((t) => (
              <option key={t} value={t}>
                {TYPE_LABELS[t]}
              </option>
            ))}
          </select>
        </label>
        <button type="submit">Agendar</button>
      </form>
      {message !== null && (
        <p
          role={message.kind === "error" ? "alert" : "status"}
          className={message.kind}
          data-testid="appointment-message"
        >
          {message.text}
        </p>
      )}
    </section>
  );
}
