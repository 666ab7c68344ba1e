import { type FormEvent, useState } from "react";
import { errorText, invoke } from "./invoke.js";
import type { Branch, Patient } from "./types.js";

interface PatientSearchProps {
  branch: Branch;
  selected: Patient | null;
  onSelect: (patient: Patient | null) => void;
  onOpen: (patient: Patient) => void;
}

/** Search by name (accents and case ignored) or document; pick one for the new appointment, or open their record. */
export function PatientSearch({ branch, selected, onSelect, onOpen }: PatientSearchProps) {
  const [query, setQuery] = useState("");
  const [results, setResults] = useState<Patient[] | null>(null);
  const [error, setError] = useState<string | null>(null);

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
    <section className="card">
      <h2>Buscar paciente</h2>
      <form onSubmit={(e) => void search(e)}>
        <input
          data-testid="patient-query"
          aria-label="Nombre o documento del paciente"
          placeholder="Nombre o documento"
          value={query}
          onChange={(e) => setQuery(e.target.value)}
        />
        <button type="submit">Buscar</button>
      </form>
      {error !== null && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
      {results !== null && results.length === 0 && <p>Sin resultados.</p>}
      {results !== null && results.length > 0 && (
        <ul className="results" data-testid="patient-results">
          {results.map((p) => (
            <li key={p.id}>
              <button type="button" aria-pressed={selected?.id === p.id} onClick={() => onSelect(p)}>
                {p.full_name} · {p.document_id ?? "sin documento"}
              </button>{" "}
              <button type="button" aria-label={`Ver expediente de ${p.full_name}`} onClick={() => onOpen(p)}>
                Expediente
              </button>
            </li>
          ))}
        </ul>
      )}
      {selected !== null && (
        <p data-testid="selected-patient">
          Paciente seleccionado: <strong>{selected.full_name}</strong>
        </p>
      )}
    </section>
  );
}
