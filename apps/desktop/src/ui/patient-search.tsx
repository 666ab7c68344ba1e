import { type FormEvent, useState } from "react";
import { ErrorAlert } from "./error-alert.js";
import { errorText, invoke } from "./invoke.js";
import { ageOn, type Branch, type Patient, todayIn } from "./types.js";

interface PatientSearchProps {
  branch: Branch;
  selected: Patient | null;
  onSelect: (patient: Patient | null) => void;
  onOpen: (patient: Patient) => void;
  /** "Registrar paciente nuevo": the search found nobody, or not the right person. */
  onRegister: () => void;
}

/** What tells two people of the same name apart: age, phone and document. */
export function patientDetails(p: Patient, today: string): string {
  const age = ageOn(p.birth_date, today);
  return `${age === 1 ? "1 año" : `${age} años`} · Tel. ${p.phone} · ${p.document_id ?? "sin documento"}`;
}

/** Search by name (accents and case ignored) or document; pick one for the new appointment, or open their record. */
export function PatientSearch({ branch, selected, onSelect, onOpen, onRegister }: PatientSearchProps) {
  const [query, setQuery] = useState("");
  const [results, setResults] = useState<Patient[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const today = todayIn(branch.timezone);

  const search = async (event: FormEvent) => {
    event.preventDefault();
    try {
      setResults(await invoke<Patient[]>("search_patients", { query, branch_id: branch.id }));
      setError(null);
    } catch (e) {
      setResults(null);
      setError(errorText(e));
    }
  };

  return (
    <section className="card" aria-labelledby="search-title">
      <h2 id="search-title">Buscar paciente</h2>
      <form className="search-form" onSubmit={(e) => void search(e)}>
        <input
          data-testid="patient-query"
          aria-label="Nombre o documento del paciente"
          placeholder="Nombre o documento"
          value={query}
          onChange={(e) => setQuery(e.target.value)}
        />
        <button type="submit">Buscar</button>
      </form>
      <ErrorAlert error={error} />
      {results !== null && results.length === 0 && <p data-testid="no-results">Sin resultados.</p>}
      {results !== null && results.length > 0 && (
        <ul className="results" data-testid="patient-results">
          {results.map((p) => (
            <li key={p.id}>
              <button
                type="button"
                className="result"
                aria-pressed={selected?.id === p.id}
                onClick={() => onSelect(p)}
              >
                <strong>{p.full_name}</strong>
                <span className="result-details">{patientDetails(p, today)}</span>
              </button>
              <button
                type="button"
                className="small"
                aria-label={`Ver expediente de ${p.full_name}`}
                onClick={() => onOpen(p)}
              >
                Expediente
              </button>
            </li>
          ))}
        </ul>
      )}
      {results !== null && (
        <p>
          {results.length > 0 && <span className="muted">¿No es ninguno? </span>}
          <button type="button" onClick={onRegister}>
            Registrar paciente nuevo
          </button>
        </p>
      )}
      {selected !== null && (
        <p data-testid="selected-patient">
          Paciente seleccionado: <strong>{selected.full_name}</strong>
          <br />
          <span className="muted">{patientDetails(selected, today)}</span>
        </p>
      )}
    </section>
  );
}
