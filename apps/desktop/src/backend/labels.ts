import type { APPOINTMENT_STATUSES, APPOINTMENT_TYPES, PATIENT_SEXES } from "@centrovision/core";

/** The words a receptionist reads for each stored value: the UI shows them, the backend's refusals name them. */
export const STATUS_LABELS: Record<(typeof APPOINTMENT_STATUSES)[number], string> = {
  scheduled: "Programada",
  confirmed: "Confirmada",
  checked_in: "En sala de espera",
  in_progress: "En consulta",
  completed: "Atendida",
  cancelled: "Cancelada",
  no_show: "No asistió",
};

export const TYPE_LABELS: Record<(typeof APPOINTMENT_TYPES)[number], string> = {
  first_visit: "Primera vez",
  follow_up: "Seguimiento",
  post_op: "Postoperatorio",
  surgery: "Cirugía",
  study: "Estudio",
  emergency: "Urgencia",
};

export const SEX_LABELS: Record<(typeof PATIENT_SEXES)[number], string> = {
  female: "Femenino",
  male: "Masculino",
  intersex: "Intersexual",
  unknown: "No especificado",
};

/** "primera vez, seguimiento … o urgencia (first_visit, follow_up, …)": the choices as the form names them, then as sent. */
export function choicesOf(labels: Readonly<Record<string, string>>): string {
  const words = Object.values(labels).map((word) => word.toLowerCase());
  const listed = `${words.slice(0, -1).join(", ")} o ${words.at(-1)}`;
  return `${listed} (${Object.keys(labels).join(", ")})`;
}
