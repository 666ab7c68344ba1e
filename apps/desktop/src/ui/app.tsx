import { SyncIndicator } from "@centrovision/ui-react";
import { useCallback, useEffect, useRef, useState } from "react";
import { Agenda } from "./agenda.js";
import { AppointmentForm } from "./appointment-form.js";
import { AuditTrail } from "./audit-trail.js";
import { ConflictsView } from "./conflicts-view.js";
import { DevPanel } from "./dev-panel.js";
import { errorText, invoke } from "./invoke.js";
import { openRecord, PatientRecord, type RecordState } from "./patient-record.js";
import { PatientSearch } from "./patient-search.js";
import { SignIn } from "./sign-in.js";
import { type Branch, type Patient, type Session, type SignedIn, todayIn } from "./types.js";

type View = "agenda" | "conflictos" | "bitacora";

/**
 * The sign-in screen until someone is signed in, then the workspace. The session is re-read every
 * few seconds: it can end without this screen doing anything (the cloud refused to renew it, an
 * offline sign-in ran out), and the cloud can come back after an offline sign-in.
 */
export function App() {
  const [session, setSession] = useState<Session | null>(null);
  const [error, setError] = useState<string | null>(null);

  const read = useCallback(async () => {
    try {
      setSession(await invoke<Session>("get_session"));
      setError(null);
    } catch (e) {
      setError(errorText(e));
    }
  }, []);
  useEffect(() => {
    void read();
    const timer = setInterval(() => void read(), 3_000);
    return () => clearInterval(timer);
  }, [read]);

  const signOut = async () => {
    try {
      setSession(await invoke<Session>("sign_out"));
    } catch (e) {
      setError(errorText(e));
    }
  };

  return (
    <div className="app">
      {error !== null && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
      {session?.signedIn === false && <SignIn onSignedIn={setSession} />}
      {session?.signedIn === true && <Workspace session={session} onSignOut={() => void signOut()} />}
      <DevPanel />
    </div>
  );
}

interface WorkspaceProps {
  session: SignedIn;
  onSignOut: () => void;
}

function Workspace({ session, onSignOut }: WorkspaceProps) {
  const [branches, setBranches] = useState<Branch[]>([]);
  const [branchId, setBranchId] = useState<string>("");
  const [date, setDate] = useState<string>(todayIn("America/Mexico_City"));
  const [patient, setPatient] = useState<Patient | null>(null);
  const [opened, setOpened] = useState<Patient | null>(null);
  const [record, setRecord] = useState<RecordState | null>(null);
  const asked = useRef<string | null>(null);
  const open = useCallback((chosen: Patient) => {
    setOpened(chosen);
    asked.current = chosen.id;
    // An answer for a patient asked for earlier must not replace the one asked for last.
    void openRecord(chosen.id, (state) => {
      if (asked.current === state.patientId) setRecord(state);
    });
  }, []);
  const close = useCallback(() => {
    asked.current = null;
    setOpened(null);
    setRecord(null);
  }, []);
  const [view, setView] = useState<View>("agenda");
  const [agendaVersion, setAgendaVersion] = useState(0);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    invoke<Branch[]>("list_branches").then(
      (list) => {
        setBranches(list);
        setBranchId((current) => current || list[0]?.id || "");
      },
      (e: unknown) => setError(errorText(e)),
    );
  }, []);

  const branch = branches.find((b) => b.id === branchId) ?? null;
  const refreshAgenda = useCallback(() => setAgendaVersion((n) => n + 1), []);
  const { user, method } = session;

  return (
    <>
      <header className="header">
        <h1>CentroVision</h1>
        <label>
          Sucursal{" "}
          <select data-testid="branch" value={branchId} onChange={(e) => setBranchId(e.target.value)}>
            {branches.map((b) => (
              <option key={b.id} value={b.id}>
                {b.name}
              </option>
            ))}
          </select>
        </label>
        <label>
          Fecha{" "}
          <input data-testid="date" type="date" value={date} onChange={(e) => setDate(e.target.value)} />
        </label>
        <nav>
          <button type="button" aria-pressed={view === "agenda"} onClick={() => setView("agenda")}>
            Agenda
          </button>
          <button type="button" aria-pressed={view === "conflictos"} onClick={() => setView("conflictos")}>
            Conflictos
          </button>
          {session.admin && (
            <button type="button" aria-pressed={view === "bitacora"} onClick={() => setView("bitacora")}>
              Bitácora
            </button>
          )}
        </nav>
        <div className="indicator" data-testid="sync-indicator">
          <SyncIndicator />
        </div>
        <div className="session">
          <span data-testid="session-user">
            {user.name} · {user.email}
            {method === "clinic" && <em> (en el servidor de la clínica)</em>}
            {method === "device" && <em> (sin conexión)</em>}
          </span>
          <button type="button" onClick={onSignOut}>
            Cerrar sesión
          </button>
        </div>
      </header>
      {session.needsOnlineSignIn && (
        <div className="banner" role="status" data-testid="online-sign-in-banner">
          Vuelva a iniciar sesión para sincronizar con la nube{" "}
          <button type="button" onClick={onSignOut}>
            Iniciar sesión en línea
          </button>
        </div>
      )}
      {session.needsClinicSignIn && (
        <div className="banner" role="status" data-testid="clinic-sign-in-banner">
          Sin sesión vigente en el servidor de la clínica: siga trabajando en este equipo, o vuelva a iniciar
          sesión para usarlo{" "}
          <button type="button" onClick={onSignOut}>
            Iniciar sesión
          </button>
        </div>
      )}
      {error !== null && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
      {view === "agenda" && branch !== null && (
        <main className="columns">
          <section className="agenda-column">
            {record !== null && <PatientRecord state={record} onClose={close} />}
            <Agenda branch={branch} date={date} version={agendaVersion} />
          </section>
          <aside className="side-column">
            <PatientSearch branch={branch} selected={patient} onSelect={setPatient} onOpen={open} />
            <AppointmentForm branch={branch} date={date} patient={patient} onCreated={refreshAgenda} />
          </aside>
        </main>
      )}
      {view === "conflictos" && <ConflictsView />}
      {view === "bitacora" && session.admin && (
        <AuditTrail
          patient={opened === null ? null : { id: opened.id, name: opened.full_name }}
          onAllPatients={close}
        />
      )}
    </>
  );
}
