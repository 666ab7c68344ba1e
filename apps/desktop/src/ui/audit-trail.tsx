import { type FormEvent, useCallback, useEffect, useState } from "react";
import { ErrorAlert } from "./error-alert.js";
import { errorText, invoke } from "./invoke.js";
import { offsetOn, todayIn } from "./types.js";

/** One event of `get_audit_trail` (the sync engine's `AuditTrailEvent`). */
interface TrailEvent {
  at: string;
  action: "insert" | "update" | "delete" | "open";
  table: string;
  rowId: string;
  patientId: string;
  patientName: string;
  changedColumns: string[] | null;
  author: { user: string | null; name: string | null; signIn: string | null; device: string | null } | null;
  node: string;
}

const ACTIONS: Record<TrailEvent["action"], string> = {
  open: "Consultó el expediente",
  insert: "Creó",
  update: "Modificó",
  delete: "Eliminó",
};

const TABLES: Record<string, string> = {
  patients: "datos del paciente",
  appointments: "una cita",
  encounters: "una consulta",
  exam_eye: "una exploración",
  diagnoses: "un diagnóstico",
};

const SIGN_INS: Record<string, string> = {
  online: "en línea",
  clinic: "en el servidor de la clínica",
  password: "en línea",
};

function describe(event: TrailEvent): string {
  if (event.action === "open") return ACTIONS.open;
  return `${ACTIONS[event.action]} ${TABLES[event.table] ?? event.table}`;
}

function who(event: TrailEvent): string {
  if (event.author === null) return "El sistema (sincronización o administración del servidor)";
  const name = event.author.name ?? "Persona de otra sucursal";
  const how = event.author.signIn === null ? null : (SIGN_INS[event.author.signIn] ?? event.author.signIn);
  return how === null ? name : `${name} (${how})`;
}

/** The clinic's time zone: the trail's days and times are the clinic's, whatever this PC's clock says. */
const CLINIC_TZ = "America/Mexico_City";

const dateTime = (iso: string) =>
  new Intl.DateTimeFormat("es-MX", {
    timeZone: CLINIC_TZ,
    dateStyle: "medium",
    timeStyle: "medium",
  }).format(new Date(iso));

/** The first instant of a clinic day (YYYY-MM-DD). */
const startOf = (date: string) => `${date}T00:00:00${offsetOn(date, CLINIC_TZ)}`;

const nextDay = (date: string) => {
  const d = new Date(`${date}T12:00:00Z`);
  d.setUTCDate(d.getUTCDate() + 1);
  return d.toISOString().slice(0, 10);
};

interface AuditTrailProps {
  /** Only this patient's events, when the administrator came from their record. */
  patient: { id: string; name: string } | null;
  onAllPatients: () => void;
}

/** The bitácora for a clinic's administrator: who did what to which patient's record, and when. */
export function AuditTrail({ patient, onAllPatients }: AuditTrailProps) {
  const [from, setFrom] = useState(todayIn(CLINIC_TZ));
  const [to, setTo] = useState(todayIn(CLINIC_TZ));
  const [events, setEvents] = useState<TrailEvent[] | null>(null);
  const [withSystem, setWithSystem] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const load = useCallback(async () => {
    try {
      const list = await invoke<TrailEvent[]>("get_audit_trail", {
        from: startOf(from),
        to: startOf(nextDay(to)),
        ...(patient !== null && { patient_id: patient.id }),
        limit: 1000,
      });
      setEvents(list);
      setError(null);
    } catch (e) {
      setEvents(null);
      setError(errorText(e));
    }
  }, [from, to, patient]);

  useEffect(() => {
    void load();
  }, [load]);

  // Newest first; the server's own writes (seeding, sync) only when asked for.
  const shown =
    events === null ? null : events.filter((event) => withSystem || event.author !== null).reverse();

  const submit = (event: FormEvent) => {
    event.preventDefault();
    void load();
  };

  return (
    <main className="card" data-testid="audit-trail">
      <h2>Bitácora de expedientes</h2>
      <form className="audit-filters" onSubmit={submit}>
        <label>
          Desde <input type="date" value={from} onChange={(e) => setFrom(e.target.value)} />
        </label>
        <label>
          Hasta <input type="date" value={to} onChange={(e) => setTo(e.target.value)} />
        </label>
        <label>
          <input type="checkbox" checked={withSystem} onChange={(e) => setWithSystem(e.target.checked)} />{" "}
          Incluir los movimientos del sistema (altas iniciales, sincronización)
        </label>
        <button type="submit">Consultar</button>
        {patient !== null && (
          <span>
            Solo {patient.name}{" "}
            <button type="button" onClick={onAllPatients}>
              Ver todos los pacientes
            </button>
          </span>
        )}
      </form>
      <ErrorAlert error={error} />
      {shown !== null && shown.length === 0 && <p>Sin movimientos en ese periodo.</p>}
      {shown !== null && shown.length > 0 && (
        <table className="audit-table">
          <caption>
            {shown.length} movimientos, el más reciente primero
            {events?.length === 1000 ? " (de los 1000 más recientes del periodo)" : ""}
          </caption>
          <thead>
            <tr>
              <th scope="col">Fecha y hora</th>
              <th scope="col">Quién</th>
              <th scope="col">Qué</th>
              <th scope="col">Paciente</th>
              <th scope="col">Campos</th>
            </tr>
          </thead>
          <tbody>
            {shown.map((event) => (
              <tr key={`${event.node}:${event.rowId}:${event.at}:${event.action}`}>
                <td>{dateTime(event.at)}</td>
                <td>{who(event)}</td>
                <td>{describe(event)}</td>
                <td>{event.patientName}</td>
                <td>{event.changedColumns?.join(", ") ?? "—"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </main>
  );
}
