import { ErrorAlert } from "./error-alert.js";
import { errorText, invoke } from "./invoke.js";
import {
  type AgendaItem,
  ageOn,
  type Patient,
  SEX_LABELS,
  STATUS_LABELS,
  TYPE_LABELS,
  todayIn,
} from "./types.js";

/** `open_patient`'s answer: the record, its latest appointments, and where the opening was recorded. */
interface OpenedRecord {
  patient: Patient;
  appointments: AgendaItem[];
  audit: "recorded" | "held";
}

const dateTime = (iso: string) =>
  new Intl.DateTimeFormat("es-MX", {
    timeZone: "America/Mexico_City",
    dateStyle: "medium",
    timeStyle: "short",
  }).format(new Date(iso));

const birthDate = (date: string) =>
  new Intl.DateTimeFormat("es-MX", { dateStyle: "long", timeZone: "UTC" }).format(
    new Date(`${date}T00:00:00Z`),
  );

/** A record being opened: loading (record null), shown, or refused with the backend's message. */
export interface RecordState {
  readonly patientId: string;
  readonly record: OpenedRecord | null;
  readonly error: string | null;
}

/**
 * Opens a patient's record: one `open_patient` call per action of the person (the backend records
 * the opening in the audit trail before it answers), so a re-render never records it again.
 */
export async function openRecord(patientId: string, show: (state: RecordState) => void): Promise<void> {
  show({ patientId, record: null, error: null });
  try {
    show({
      patientId,
      record: await invoke<OpenedRecord>("open_patient", { patient_id: patientId }),
      error: null,
    });
  } catch (e) {
    show({ patientId, record: null, error: errorText(e) });
  }
}

interface PatientRecordProps {
  state: RecordState;
  onClose: () => void;
}

/** A patient's record (expediente), as `openRecord` fetched it. */
export function PatientRecord({ state, onClose }: PatientRecordProps) {
  const { record, error } = state;
  const p = record?.patient;
  return (
    <section className="card record" aria-labelledby="record-title" data-testid="patient-record">
      <div className="record-header">
        <h2 id="record-title">{p === undefined ? "Expediente" : `Expediente de ${p.full_name}`}</h2>
        <button type="button" onClick={onClose}>
          Cerrar expediente
        </button>
      </div>
      <ErrorAlert error={error} />
      {record === null && error === null && <p>Abriendo expediente…</p>}
      {p !== undefined && record !== null && (
        <>
          <p className="muted" data-testid="record-audit">
            {record.audit === "recorded"
              ? "Esta consulta quedó registrada en la bitácora."
              : "Esta consulta se registrará en la bitácora en cuanto haya conexión con un servidor."}
          </p>
          {p.allergies !== null && (
            <p className="allergies" role="note">
              <strong>Alergias:</strong> {p.allergies}
            </p>
          )}
          <dl className="record-fields">
            <dt>Documento</dt>
            <dd>{p.document_id ?? "Sin documento"}</dd>
            <dt>Fecha de nacimiento</dt>
            <dd>
              {birthDate(p.birth_date)} ({ageOn(p.birth_date, todayIn("America/Mexico_City"))} años)
            </dd>
            <dt>Sexo</dt>
            <dd>{SEX_LABELS[p.sex]}</dd>
            <dt>Teléfono</dt>
            <dd>{p.phone}</dd>
            <dt>Correo</dt>
            <dd>{p.email ?? "—"}</dd>
            <dt>Domicilio</dt>
            <dd>{p.address ?? "—"}</dd>
            <dt>Notas</dt>
            <dd>{p.notes ?? "—"}</dd>
          </dl>
          <h3>Citas recientes</h3>
          {record.appointments.length === 0 ? (
            <p>Sin citas registradas.</p>
          ) : (
            <table className="record-appointments">
              <thead>
                <tr>
                  <th scope="col">Fecha</th>
                  <th scope="col">Tipo</th>
                  <th scope="col">Motivo</th>
                  <th scope="col">Estado</th>
                </tr>
              </thead>
              <tbody>
                {record.appointments.map((a) => (
                  <tr key={a.id}>
                    <td>{dateTime(a.starts_at)}</td>
                    <td>{TYPE_LABELS[a.type]}</td>
                    <td>{a.reason}</td>
                    <td>{STATUS_LABELS[a.status]}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </>
      )}
    </section>
  );
}
