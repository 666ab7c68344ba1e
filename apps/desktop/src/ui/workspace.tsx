import { SyncIndicator, useNetworkStatus } from "@centrovision/ui-react";
import { useCallback, useEffect, useRef, useState } from "react";
import { AuditTrail } from "./audit-trail.js";
import { BranchDesk } from "./branch-desk.js";
import { BranchPicker } from "./branch-picker.js";
import { ConflictsView } from "./conflicts-view.js";
import { ErrorAlert } from "./error-alert.js";
import { errorText, invoke } from "./invoke.js";
import { ModeBanner } from "./mode-banner.js";
import { OthersUnsent } from "./others-unsent.js";
import { openRecord, type RecordState } from "./patient-record.js";
import { type Branch, type Patient, type SignedIn, todayIn } from "./types.js";

type View = "agenda" | "conflictos" | "bitacora";

interface WorkspaceProps {
  session: SignedIn;
  /**
   * Ends the session; `leaveUnsent` false asks first when this person's offline writes have not
   * reached a server (a sign-in again at once, to sync, does not need to ask).
   */
  onSignOut: (leaveUnsent: boolean) => void;
}

/**
 * The signed-in screen. It opens on this PC's own branch (`home`) and never picks another by
 * itself; the branch list is read again at every mode change, since what the PC can serve
 * depends on it.
 */
export function Workspace({ session, onSignOut }: WorkspaceProps) {
  const { connectionMode } = useNetworkStatus();
  const [branches, setBranches] = useState<Branch[]>([]);
  const [branchId, setBranchId] = useState("");
  const [date, setDate] = useState<string | null>(null);
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
  const [error, setError] = useState<string | null>(null);

  const [attempt, setAttempt] = useState(0);
  useEffect(() => {
    void connectionMode;
    void attempt;
    let retry: ReturnType<typeof setTimeout> | undefined;
    invoke<Branch[]>("list_branches").then(
      (list) => {
        setBranches(list);
        setBranchId((current) => current || (list.find((b) => b.home)?.id ?? ""));
        setError(null);
      },
      (e: unknown) => {
        setError(errorText(e));
        // Without the list there is no agenda to show: ask again rather than wait for a mode change.
        retry = setTimeout(() => setAttempt((n) => n + 1), 3_000);
      },
    );
    return () => clearTimeout(retry);
  }, [connectionMode, attempt]);

  // Bookings made here offline that clashed when they reached a server: asked at every mode change
  // (a drain follows one), every 10 s, and when the review is left. The count from before the
  // review is dropped on entering it: the receptionist may settle them there, and back on the
  // agenda the banner waited for the new count's answer showing the old one.
  const [doubleBookings, setDoubleBookings] = useState(0);
  useEffect(() => {
    void connectionMode;
    if (view === "conflictos") {
      setDoubleBookings(0);
      return;
    }
    const count = () =>
      invoke<unknown[]>("list_double_bookings").then(
        (list) => setDoubleBookings(list.length),
        () => {},
      );
    void count();
    const every = setInterval(count, 10_000);
    return () => clearInterval(every);
  }, [connectionMode, view]);

  const branch = branches.find((b) => b.id === branchId) ?? null;
  useEffect(() => {
    if (branch !== null) setDate((current) => current ?? todayIn(branch.timezone));
  }, [branch]);
  const { user, method } = session;

  return (
    <>
      <header className="header">
        <h1>CentroVision</h1>
        <BranchPicker branches={branches} value={branchId} mode={connectionMode} onChange={setBranchId} />
        <nav aria-label="Secciones">
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
          <button type="button" onClick={() => onSignOut(false)}>
            Cerrar sesión
          </button>
        </div>
      </header>
      <ModeBanner />
      <OthersUnsent others={session.othersUnsent} />
      {session.needsOnlineSignIn && (
        <div className="banner" role="status" data-testid="online-sign-in-banner">
          Vuelva a iniciar sesión para sincronizar con la nube{" "}
          <button type="button" onClick={() => onSignOut(true)}>
            Iniciar sesión en línea
          </button>
        </div>
      )}
      {session.needsClinicSignIn && (
        <div className="banner" role="status" data-testid="clinic-sign-in-banner">
          Sin sesión vigente en el servidor de la clínica: siga trabajando en este equipo, o vuelva a iniciar
          sesión para usarlo{" "}
          <button type="button" onClick={() => onSignOut(true)}>
            Iniciar sesión
          </button>
        </div>
      )}
      {doubleBookings > 0 && view !== "conflictos" && (
        <div className="banner" role="status" data-testid="double-bookings-banner">
          {doubleBookings === 1
            ? "Una cita agendada sin conexión se empalma con otra que se hizo mientras tanto."
            : `${doubleBookings} citas agendadas sin conexión se empalman con otras que se hicieron mientras tanto.`}{" "}
          <button type="button" onClick={() => setView("conflictos")}>
            Revisar citas dobles
          </button>
        </div>
      )}
      <ErrorAlert error={error} />
      {view === "agenda" && branch === null && branches.length > 0 && (
        <main className="card">
          <p>Este equipo no tiene una sucursal propia configurada: elija la sucursal en la parte superior.</p>
        </main>
      )}
      {view === "agenda" && branch !== null && date !== null && (
        <BranchDesk
          key={branch.id}
          branch={branch}
          date={date}
          onDate={setDate}
          record={record}
          onOpenRecord={open}
          onCloseRecord={close}
        />
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
