import {
  APPOINTMENT_STATUSES,
  CvError,
  type FailoverRouter,
  type InputIssue,
  type Row,
} from "@centrovision/core";
import { invalidInput } from "./input-issues.js";

/**
 * A booking about to be written, as checked on whatever tier serves it: the same rule in the
 * cloud, on the clinic server and on this PC's copy, since every read goes through the router.
 */
export interface Booking {
  readonly branch: Row<"branches">;
  readonly patient_id: string;
  readonly doctor_id: string | null;
  readonly room_id: string | null;
  /** Canonical UTC ISO times, `[starts_at, ends_at)`. */
  readonly starts_at: string;
  readonly ends_at: string;
}

/** Appointments that still hold their slot. */
export const HOLDING: readonly (typeof APPOINTMENT_STATUSES)[number][] = APPOINTMENT_STATUSES.filter(
  (s) => s !== "cancelled" && s !== "no_show",
);

/**
 * How far back a clashing appointment may start. Bookings last at most 8 hours (the
 * `duration_minutes` limit), so a day back finds every one still running at `starts_at` while
 * the query stays on the `starts_at` index instead of the branch's whole history.
 */
const LOOK_BACK_MS = 24 * 3_600_000;

/** The room belongs to the branch and is in service, the doctor works there: else `invalid_input` naming both. */
export async function checkBranchStaff(router: FailoverRouter, booking: Booking): Promise<void> {
  const { branch, room_id, doctor_id } = booking;
  const [room, links] = await Promise.all([
    room_id === null ? undefined : router.table("rooms").get(room_id),
    doctor_id === null
      ? undefined
      : router.table("user_branches").list({ where: { user_id: doctor_id, branch_id: branch.id }, limit: 1 }),
  ]);
  const issues: InputIssue[] = [];
  if (room === null || (room !== undefined && room.branch_id !== branch.id)) {
    issues.push({
      path: "room_id",
      message: "consultorio: no pertenece a esta sucursal; elija uno de la lista",
    });
  } else if (room !== undefined && !room.active) {
    issues.push({ path: "room_id", message: "consultorio: está fuera de servicio; elija otro" });
  }
  if (links !== undefined && links.length === 0) {
    issues.push({ path: "doctor_id", message: "médico: no atiende en esta sucursal; elija uno de la lista" });
  }
  if (issues.length > 0) throw invalidInput(issues);
}

/**
 * Refuses with `conflict` a booking that overlaps another holding its slot for the same patient,
 * doctor (when given) or room (when given), naming which and the other's time in the branch's
 * time zone, never whose it is.
 */
export async function checkOverlaps(router: FailoverRouter, booking: Booking): Promise<void> {
  const { starts_at, ends_at } = booking;
  const around = await router.table("appointments").list({
    where: {
      starts_at: { gt: new Date(Date.parse(starts_at) - LOOK_BACK_MS).toISOString(), lt: ends_at },
      ends_at: { gt: starts_at },
      status: { in: HOLDING },
    },
    orderBy: [{ column: "starts_at" }],
  });
  const time = new Intl.DateTimeFormat("es-MX", {
    timeZone: booking.branch.timezone,
    hour: "2-digit",
    minute: "2-digit",
    hourCycle: "h23",
  });
  const span = (a: Row<"appointments">) =>
    `de ${time.format(new Date(a.starts_at))} a ${time.format(new Date(a.ends_at))}`;
  const issues: InputIssue[] = [];
  const clash = (path: string, same: (a: Row<"appointments">) => boolean, says: (when: string) => string) => {
    const other = around.find(same);
    if (other !== undefined) issues.push({ path, message: says(span(other)) });
  };
  clash(
    "patient_id",
    (a) => a.patient_id === booking.patient_id,
    (when) => `el paciente ya tiene una cita ${when}`,
  );
  if (booking.doctor_id !== null) {
    clash(
      "doctor_id",
      (a) => a.doctor_id === booking.doctor_id,
      (when) => `el médico ya tiene una cita ${when}`,
    );
  }
  if (booking.room_id !== null) {
    clash(
      "room_id",
      (a) => a.room_id === booking.room_id,
      (when) => `el consultorio está ocupado ${when}`,
    );
  }
  if (issues.length === 0) return;
  const message =
    `La cita se empalma con otra: ${issues.map((issue) => issue.message).join("; ")}. ` +
    "Elija otra hora, o confirme la cita doble para agendarla de todos modos.";
  throw new CvError("conflict", message, { issues });
}
