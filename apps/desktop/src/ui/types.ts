import type { Row } from "@centrovision/core";

export type Branch = Row<"branches">;
export type AgendaItem = Row<"appointments"> & { patient_name: string };
export type Patient = Row<"patients"> & { full_name: string };

export const STATUS_LABELS: Record<AgendaItem["status"], string> = {
  scheduled: "Programada",
  confirmed: "Confirmada",
  checked_in: "En sala de espera",
  in_progress: "En consulta",
  completed: "Atendida",
  cancelled: "Cancelada",
  no_show: "No asistió",
};

export const TYPE_LABELS: Record<AgendaItem["type"], string> = {
  first_visit: "Primera vez",
  follow_up: "Seguimiento",
  post_op: "Postoperatorio",
  surgery: "Cirugía",
  study: "Estudio",
  emergency: "Urgencia",
};

/** "09:30" in the branch's time zone. */
export function timeIn(iso: string, timeZone: string): string {
  return new Intl.DateTimeFormat("es-MX", {
    timeZone,
    hour: "2-digit",
    minute: "2-digit",
    hourCycle: "h23",
  }).format(new Date(iso));
}

/** Today in the branch's time zone, YYYY-MM-DD. */
export function todayIn(timeZone: string): string {
  return new Intl.DateTimeFormat("en-CA", { timeZone }).format(new Date());
}

/** The UTC offset ("-06:00") of a time zone on a date, for building `starts_at` from a wall time. */
export function offsetOn(date: string, timeZone: string): string {
  const name = new Intl.DateTimeFormat("en-US", { timeZone, timeZoneName: "longOffset" })
    .formatToParts(new Date(`${date}T12:00:00Z`))
    .find((part) => part.type === "timeZoneName")?.value;
  const offset = name?.replace("GMT", "") ?? "";
  return offset === "" ? "+00:00" : offset;
}

/** `get_session`'s answer (the backend's `SessionView`). */
export type Session =
  | { signedIn: false }
  | {
      signedIn: true;
      user: { id: string; email: string; name: string };
      method: "online" | "clinic" | "device";
      expiresAt: string | null;
      needsOnlineSignIn: boolean;
      needsClinicSignIn: boolean;
      admin: boolean;
    };

export type SignedIn = Extract<Session, { signedIn: true }>;
