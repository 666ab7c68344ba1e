import { SyncIndicator } from "@centrovision/ui-react";
import { useCallback, useEffect, useState } from "react";
import { Agenda } from "./agenda.js";
import { AppointmentForm } from "./appointment-form.js";
import { ConflictsView } from "./conflicts-view.js";
import { DevPanel } from "./dev-panel.js";
import { errorText, invoke } from "./invoke.js";
import { PatientSearch } from "./patient-search.js";
import { type Branch, type Patient, todayIn } from "./types.js";

type View = "agenda" | "conflictos";

export function App() {
  const [branches, setBranches] = useState<Branch[]>([]);
  const [branchId, setBranchId] = useState<string>("");
  const [date, setDate] = useState<string>(todayIn("America/Mexico_City"));
  const [patient, setPatient] = useState<Patient | null>(null);
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

  return (
    <div className="app">
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
        </nav>
        <div className="indicator" data-testid="sync-indicator">
          <SyncIndicator />
        </div>
      </header>
      {error !== null && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
      {view === "agenda" && branch !== null && (
        <main className="columns">
          <section className="agenda-column">
            <Agenda branch={branch} date={date} version={agendaVersion} />
          </section>
          <aside className="side-column">
            <PatientSearch branch={branch} selected={patient} onSelect={setPatient} />
            <AppointmentForm branch={branch} date={date} patient={patient} onCreated={refreshAgenda} />
          </aside>
        </main>
      )}
      {view === "conflictos" && <ConflictsView />}
      <DevPanel />
    </div>
  );
}
