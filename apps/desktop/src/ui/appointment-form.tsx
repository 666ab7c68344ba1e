import { type FormEvent, useEffect, useRef, useState } from "react";
import { errorCode, errorText, invoke } from "./invoke.js";
import {
  type AgendaItem,
  type Branch,
  dayHeading,
  offsetOn,
  type Patient,
  type Staff,
  TYPE_LABELS,
} from "./types.js";

const TYPES = Object.keys(TYPE_LABELS) as AgendaItem["type"][];
const DURATIONS = [15, 20, 30, 45, 60, 90, 120];

/** A slot picked on the grid: its time and doctor fill the form. `pick` changes at every click. */
export interface SlotDraft {
  readonly time: string;
  readonly doctorId: string | null;
  readonly pick: number;
}

interface AppointmentFormProps {
  branch: Branch;
  date: string;
  patient: Patient | null;
  staff: Staff | null;
  draft: SlotDraft | null;
  onCreated: () => void;
}

type Message = { kind: "ok" | "error"; text: string } | { kind: "overlap"; text: string; args: Booking };
type Booking = Record<string, unknown>;

/**
 * A new appointment for the selected patient on the agenda's day: any time, a duration, a doctor
 * and a room. An overlap with the same patient, doctor or room is refused with the reason; the
 * receptionist may then book it anyway, deliberately (`allow_overlap`).
 */
export function AppointmentForm({ branch, date, patient, staff, draft, onCreated }: AppointmentFormProps) {
  const [time, setTime] = useState("");
  const [duration, setDuration] = useState(30);
  const [doctorId, setDoctorId] = useState("");
  const [roomId, setRoomId] = useState("");
  const [reason, setReason] = useState("");
  const [type, setType] = useState<AgendaItem["type"]>("follow_up");
  const [working, setWorking] = useState(false);
  const [message, setMessage] = useState<Message | null>(null);
  const timeField = useRef<HTMLInputElement>(null);

  useEffect(() => {
    if (draft === null) return;
    setTime(draft.time);
    setDoctorId(draft.doctorId ?? "");
    setMessage(null);
    timeField.current?.scrollIntoView({ block: "nearest" });
    timeField.current?.focus();
  }, [draft]);

  // A message about another patient's or another day's booking would read as this one's.
  useEffect(() => {
    void patient?.id;
    void date;
    setMessage(null);
  }, [patient?.id, date]);

  const book = async (args: Booking) => {
    setWorking(true);
    try {
      await invoke("create_appointment", args);
      const doctor = staff?.doctors.find((d) => d.id === args.doctor_id)?.full_name;
      setMessage({
        kind: "ok",
        text: `Cita registrada: ${patient?.full_name ?? ""} a las ${String(args.starts_at).slice(11, 16)}${doctor ? ` con ${doctor}` : ""}.`,
      });
      setReason("");
      onCreated();
    } catch (e) {
      setMessage(
        errorCode(e) === "conflict" && args.allow_overlap !== true
          ? { kind: "overlap", text: errorText(e), args }
          : { kind: "error", text: errorText(e) },
      );
    } finally {
      setWorking(false);
    }
  };

  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (patient === null) {
      setMessage({ kind: "error", text: "Seleccione primero un paciente con la búsqueda." });
      return;
    }
    void book({
      branch_id: branch.id,
      patient_id: patient.id,
      starts_at: `${date}T${time}:00${offsetOn(date, branch.timezone)}`,
      duration_minutes: duration,
      reason,
      type,
      ...(doctorId !== "" && { doctor_id: doctorId }),
      ...(roomId !== "" && { room_id: roomId }),
    });
  };

  return (
    <section className="card" aria-labelledby="appointment-title">
      <h2 id="appointment-title">Nueva cita</h2>
      <p className="muted">
        {dayHeading(date, branch.timezone)} · {branch.name}
      </p>
      <p data-testid="appointment-patient">
        {patient === null ? (
          "Paciente: búsquelo abajo o regístrelo."
        ) : (
          <>
            Paciente: <strong>{patient.full_name}</strong>
          </>
        )}
      </p>
      <form className="form form-grid" onSubmit={submit} data-testid="appointment-form">
        <label>
          Hora
          <input
            ref={timeField}
            type="time"
            required
            value={time}
            onChange={(e) => setTime(e.target.value)}
            data-testid="appointment-time"
          />
        </label>
        <label>
          Duración
          <select value={duration} onChange={(e) => setDuration(Number(e.target.value))}>
            {DURATIONS.map((d) => (
              <option key={d} value={d}>
                {d} min
              </option>
            ))}
          </select>
        </label>
        <label>
          Médico
          <select
            value={doctorId}
            onChange={(e) => setDoctorId(e.target.value)}
            data-testid="appointment-doctor"
          >
            <option value="">Sin médico asignado</option>
            {staff?.doctors.map((d) => (
              <option key={d.id} value={d.id}>
                {d.full_name}
              </option>
            ))}
          </select>
        </label>
        <label>
          Consultorio
          <select value={roomId} onChange={(e) => setRoomId(e.target.value)} data-testid="appointment-room">
            <option value="">Sin consultorio asignado</option>
            {staff?.rooms.map((r) => (
              <option key={r.id} value={r.id}>
                {r.name}
              </option>
            ))}
          </select>
        </label>
        <label className="wide">
          Motivo
          <input
            required
            value={reason}
            onChange={(e) => setReason(e.target.value)}
            data-testid="appointment-reason"
          />
        </label>
        <label className="wide">
          Tipo
          <select value={type} onChange={(e) => setType(e.target.value as typeof type)}>
            {TYPES.map((t) => (
              <option key={t} value={t}>
                {TYPE_LABELS[t]}
              </option>
            ))}
          </select>
        </label>
        <button type="submit" className="primary wide" disabled={working} aria-busy={working}>
          Agendar cita
        </button>
      </form>
      {message !== null && message.kind !== "overlap" && (
        <p
          role={message.kind === "error" ? "alert" : "status"}
          className={message.kind}
          data-testid="appointment-message"
        >
          {message.text}
        </p>
      )}
      {message?.kind === "overlap" && (
        <div role="alert" className="overlap" data-testid="appointment-overlap">
          <p>{message.text}</p>
          <button
            type="button"
            className="primary"
            disabled={working}
            onClick={() => void book({ ...message.args, allow_overlap: true })}
          >
            Agendar de todos modos
          </button>{" "}
          <button type="button" onClick={() => setMessage(null)}>
            Elegir otro horario
          </button>
        </div>
      )}
    </section>
  );
}
