import type { Row } from "@centrovision/core";

/** `list_branches`' answer: `home` is this PC's branch, `available` false when the current mode cannot serve it. */
export type Branch = Row<"branches"> & { home: boolean; available: boolean };
export type AgendaItem = Row<"appointments"> & {
  patient_name: string;
  doctor_name: string | null;
  room_name: string | null;
  patient_phone: string;
  patient_birth_date: string;
};
export type Patient = Row<"patients"> & { full_name: string };

/** `list_staff`'s answer: who can be booked at a branch, and where. */
export interface Staff {
  doctors: { id: string; full_name: string }[];
  rooms: { id: string; name: string; kind: string }[];
}

/** "09:30" in the branch's time zone. */
export function timeIn(iso: string, timeZone: string): string {
  return new Intl.DateTimeFormat("es-MX", {
    timeZone,
    hour: "2-digit",
    minute: "2-digit",
    hourCycle: "h23",
  }).format(new Date(iso));
}

/** Minutes since midnight of an instant, on the wall clock of `timeZone`. */
export function minutesIn(iso: string, timeZone: string): number {
  const [hours, minutes] = timeIn(iso, timeZone).split(":").map(Number) as [number, number];
  return hours * 60 + minutes;
}

/** "09:30" from minutes since midnight. */
export const clock = (minutes: number): string =>
  `${String(Math.floor(minutes / 60)).padStart(2, "0")}:${String(minutes % 60).padStart(2, "0")}`;

/** Today in the branch's time zone, YYYY-MM-DD (the backend's own, pure). */
export { todayIn } from "../backend/day-range.js";
export { SEX_LABELS, STATUS_LABELS, TYPE_LABELS } from "../backend/labels.js";

/** A calendar date `days` later (or earlier), YYYY-MM-DD. */
export function addDays(date: string, days: number): string {
  const day = new Date(`${date}T12:00:00Z`);
  day.setUTCDate(day.getUTCDate() + days);
  return day.toISOString().slice(0, 10);
}

/** "viernes 4 de diciembre de 2026": the day as the branch's receptionist says it. */
export function dayHeading(date: string, timeZone: string): string {
  const noon = new Date(`${date}T12:00:00${offsetOn(date, timeZone)}`);
  return new Intl.DateTimeFormat("es-MX", {
    timeZone,
    weekday: "long",
    day: "numeric",
    month: "long",
    year: "numeric",
  })
    .format(noon)
    .replace(",", "");
}

/** Whole years from a birth date (YYYY-MM-DD) to `today` (YYYY-MM-DD). */
export function ageOn(birthDate: string, today: string): number {
  const [by, bm, bd] = birthDate.split("-").map(Number) as [number, number, number];
  const [ty, tm, td] = today.split("-").map(Number) as [number, number, number];
  return ty - by - (tm < bm || (tm === bm && td < bd) ? 1 : 0);
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
      othersUnsent: { name: string | null; changes: number; refused: number }[];
    };

export type SignedIn = Extract<Session, { signedIn: true }>;
