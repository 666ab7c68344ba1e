import { type FormEvent, useRef, useState } from "react";
import { errorText, InvokeError, invoke } from "./invoke.js";
import { type Branch, type Patient, SEX_LABELS } from "./types.js";

const FIELDS = {
  first_name: { label: "Nombre(s)", type: "text", required: true, autoComplete: "given-name" },
  last_name: { label: "Primer apellido", type: "text", required: true, autoComplete: "family-name" },
  second_last_name: { label: "Segundo apellido", type: "text", required: false, autoComplete: "off" },
  birth_date: { label: "Fecha de nacimiento", type: "date", required: true, autoComplete: "bday" },
  sex: { label: "Sexo", type: "select", required: true, autoComplete: "sex" },
  phone: { label: "Teléfono", type: "tel", required: true, autoComplete: "tel" },
  document_id: { label: "CURP o documento", type: "text", required: false, autoComplete: "off" },
  email: { label: "Correo electrónico", type: "email", required: false, autoComplete: "email" },
} as const;
type Field = keyof typeof FIELDS;
const NAMES = Object.keys(FIELDS) as Field[];
const SEXES = Object.keys(SEX_LABELS) as Patient["sex"][];

const EMPTY: Record<Field, string> = {
  first_name: "",
  last_name: "",
  second_last_name: "",
  birth_date: "",
  sex: "",
  phone: "",
  document_id: "",
  email: "",
};

interface Problem {
  readonly field: Field | null;
  readonly message: string;
}

interface PatientFormProps {
  branch: Branch;
  onRegistered: (patient: Patient) => void;
  onCancel: () => void;
}

/**
 * The backend's message without the field's name in front ("teléfono: número de México…"): next
 * to the field, and after its label in the summary, the name would be said twice.
 */
const withoutFieldName = (message: string): string => {
  const text = message.replace(/^[\p{L} ]{2,30}: /u, "");
  return text.charAt(0).toUpperCase() + text.slice(1);
};

const fieldOf = (path: string): Field | null => {
  const head = path.split(".")[0] ?? "";
  return (NAMES as string[]).includes(head) ? (head as Field) : null;
};

/**
 * Registers a new patient of the branch, on whatever tier answers (offline included). The backend
 * checks every field; all its problems are shown at once, each next to its field and in a summary.
 */
export function PatientForm({ branch, onRegistered, onCancel }: PatientFormProps) {
  const [values, setValues] = useState(EMPTY);
  const [problems, setProblems] = useState<Problem[]>([]);
  const [working, setWorking] = useState(false);
  const summary = useRef<HTMLDivElement>(null);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setWorking(true);
    const trimmed = Object.fromEntries(NAMES.map((name) => [name, values[name].trim()])) as typeof values;
    // Required fields are always sent, empty or not, so the backend names each one that is missing.
    const args = Object.fromEntries(
      NAMES.filter((name) => FIELDS[name].required || trimmed[name] !== "").map((name) => [
        name,
        trimmed[name],
      ]),
    );
    try {
      const row = await invoke<Omit<Patient, "full_name"> & { full_name?: string }>("create_patient", {
        branch_id: branch.id,
        ...args,
      });
      const full_name =
        row.full_name ?? [row.first_name, row.last_name, row.second_last_name].filter(Boolean).join(" ");
      onRegistered({ ...row, full_name });
    } catch (e) {
      const issues = e instanceof InvokeError ? e.issues : [];
      setProblems(
        issues.length > 0
          ? issues.map((issue) => {
              const field = fieldOf(issue.path);
              return { field, message: field === null ? issue.message : withoutFieldName(issue.message) };
            })
          : [{ field: null, message: errorText(e) }],
      );
      summary.current?.focus();
    } finally {
      setWorking(false);
    }
  };

  const problemsOf = (field: Field) => problems.filter((p) => p.field === field);
  const set = (field: Field) => (value: string) => setValues((v) => ({ ...v, [field]: value }));

  return (
    <section className="card" aria-labelledby="register-title" data-testid="patient-form">
      <h2 id="register-title">Registrar paciente nuevo</h2>
      <p className="muted">Sucursal {branch.name}. Los campos marcados con * son obligatorios.</p>
      <div ref={summary} tabIndex={-1} className="summary-target">
        {problems.length > 0 && (
          <div role="alert" className="error-summary" data-testid="patient-form-errors">
            <p>
              {problems.length === 1
                ? "No se pudo registrar: revise 1 dato."
                : `No se pudo registrar: revise ${problems.length} datos.`}
            </p>
            <ul>
              {problems.map((p) => (
                <li key={`${p.field ?? "-"}:${p.message}`}>
                  {p.field === null ? p.message : `${FIELDS[p.field].label}: ${p.message}`}
                </li>
              ))}
            </ul>
          </div>
        )}
      </div>
      <form className="form" noValidate onSubmit={(e) => void submit(e)}>
        {NAMES.map((name) => {
          const field = FIELDS[name];
          const own = problemsOf(name);
          const errorId = `patient-${name}-error`;
          const common = {
            id: `patient-${name}`,
            name,
            value: values[name],
            required: field.required,
            autoComplete: field.autoComplete,
            "aria-invalid": own.length > 0,
            "aria-describedby": own.length > 0 ? errorId : undefined,
          };
          return (
            <div key={name} className="field">
              <label htmlFor={common.id}>
                {field.label}
                {field.required && <span aria-hidden="true"> *</span>}
              </label>
              {field.type === "select" ? (
                <select {...common} onChange={(e) => set(name)(e.target.value)}>
                  <option value="">Elija una opción</option>
                  {SEXES.map((s) => (
                    <option key={s} value={s}>
                      {SEX_LABELS[s]}
                    </option>
                  ))}
                </select>
              ) : (
                <input {...common} type={field.type} onChange={(e) => set(name)(e.target.value)} />
              )}
              {own.length > 0 && (
                <p id={errorId} className="field-error">
                  {own.map((p) => p.message).join(" ")}
                </p>
              )}
            </div>
          );
        })}
        <div className="form-actions">
          <button type="submit" className="primary" disabled={working} aria-busy={working}>
            Registrar paciente
          </button>
          <button type="button" onClick={onCancel}>
            Cancelar
          </button>
        </div>
      </form>
    </section>
  );
}
