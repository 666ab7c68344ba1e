import { useCallback, useState } from "react";
import { Agenda } from "./agenda.js";
import { useDayAgenda, useNow, useStaff } from "./agenda-data.js";
import { AppointmentForm, type SlotDraft } from "./appointment-form.js";
import { ErrorAlert } from "./error-alert.js";
import { errorText, invoke } from "./invoke.js";
import { PatientForm } from "./patient-form.js";
import { PatientRecord, type RecordState } from "./patient-record.js";
import { PatientSearch } from "./patient-search.js";
import type { AgendaItem, Branch, Patient } from "./types.js";
import { WaitingRoom } from "./waiting-room.js";

interface BranchDeskProps {
  branch: Branch;
  date: string;
  onDate: (date: string) => void;
  record: RecordState | null;
  onOpenRecord: (patient: Patient) => void;
  onCloseRecord: () => void;
}

/**
 * The front desk of one branch: the day's grid, the waiting room, finding or registering the
 * patient, and booking. Mounted per branch, so a patient picked at one branch is never booked at
 * another.
 */
export function BranchDesk({ branch, date, onDate, record, onOpenRecord, onCloseRecord }: BranchDeskProps) {
  const [version, setVersion] = useState(0);
  const day = useDayAgenda(branch.id, date, version);
  const staff = useStaff(branch.id);
  const now = useNow();
  const [patient, setPatient] = useState<Patient | null>(null);
  const [registering, setRegistering] = useState(false);
  const [registered, setRegistered] = useState<string | null>(null);
  const [draft, setDraft] = useState<SlotDraft | null>(null);
  const [error, setError] = useState<string | null>(null);
  const refresh = useCallback(() => setVersion((n) => n + 1), []);

  const setStatus = async (item: AgendaItem, status: AgendaItem["status"]) => {
    try {
      await invoke("update_appointment_status", { appointment_id: item.id, status });
      setError(null);
      refresh();
    } catch (e) {
      setError(errorText(e));
    }
  };

  return (
    <main className="columns">
      <section className="agenda-column" aria-label="Agenda">
        {record !== null && <PatientRecord state={record} onClose={onCloseRecord} />}
        <ErrorAlert error={error} />
        <Agenda
          branch={branch}
          date={date}
          onDate={onDate}
          day={day}
          staff={staff.value}
          now={now}
          onPickSlot={(time, doctorId) => setDraft((d) => ({ time, doctorId, pick: (d?.pick ?? 0) + 1 }))}
          onCheckIn={(item) => void setStatus(item, "checked_in")}
        />
      </section>
      <aside className="side-column" aria-label="Recepción">
        <WaitingRoom
          items={day.value ?? []}
          timeZone={branch.timezone}
          onCall={(item) => void setStatus(item, "in_progress")}
        />
        {registering ? (
          <PatientForm
            branch={branch}
            onCancel={() => setRegistering(false)}
            onRegistered={(created) => {
              setRegistering(false);
              setPatient(created);
              setRegistered(created.full_name);
            }}
          />
        ) : (
          <PatientSearch
            branch={branch}
            selected={patient}
            onSelect={(p) => {
              setPatient(p);
              setRegistered(null);
            }}
            onOpen={onOpenRecord}
            onRegister={() => setRegistering(true)}
          />
        )}
        {registered !== null && !registering && (
          <p role="status" className="ok" data-testid="patient-registered">
            Paciente registrado: {registered}. Quedó seleccionado para la cita.
          </p>
        )}
        <AppointmentForm
          branch={branch}
          date={date}
          patient={patient}
          staff={staff.value}
          draft={draft}
          onCreated={refresh}
        />
      </aside>
    </main>
  );
}
