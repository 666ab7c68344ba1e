import { CvError, type FailoverRouter } from "@centrovision/core";
import type { DoubleBooking, OfflineTier } from "@centrovision/offline";
import { type AgendaItem, describeAppointments } from "./agenda.js";
import { HOLDING } from "./booking.js";

/** The offline tier's list of bookings a server found clashing when this PC's outbox drained. */
export type DoubleBookings = Pick<OfflineTier, "doubleBookings" | "settleDoubleBooking">;

/** One clash as the review shows it: both appointments as the agenda does, null when this mode cannot read one. */
export interface DoubleBookingView {
  booking_id: string;
  other_id: string;
  shared: DoubleBooking["shared"];
  found_at: string;
  booked: AgendaItem | null;
  existing: AgendaItem | null;
  /** The booked appointment's branch's time zone, to show both times in; null when it cannot be read. */
  time_zone: string | null;
}

/** How a person settles a clash: both stay, or one of them is cancelled (with their rights, on the tier in use). */
export const DOUBLE_BOOKING_CHOICES = ["keep_both", "cancel_booked", "cancel_existing"] as const;
export type DoubleBookingChoice = (typeof DOUBLE_BOOKING_CHOICES)[number];

export async function listDoubleBookings(
  router: FailoverRouter,
  list: DoubleBookings,
): Promise<DoubleBookingView[]> {
  const notices = await list.doubleBookings();
  const ids = [...new Set(notices.flatMap((n) => [n.bookingId, n.otherId]))];
  const rows =
    ids.length === 0 ? [] : await router.table("appointments").list({ where: { id: { in: ids } } });
  const items = new Map((await describeAppointments(router, rows)).map((item) => [item.id, item]));
  const branchIds = [...new Set(rows.map((row) => row.branch_id))];
  const branches =
    branchIds.length === 0 ? [] : await router.table("branches").list({ where: { id: { in: branchIds } } });
  const zoneOf = new Map(branches.map((branch) => [branch.id, branch.timezone]));
  return notices.map((n) => {
    const booked = items.get(n.bookingId) ?? null;
    return {
      booking_id: n.bookingId,
      other_id: n.otherId,
      shared: n.shared,
      found_at: n.foundAt,
      booked,
      existing: items.get(n.otherId) ?? null,
      time_zone: (booked && zoneOf.get(booked.branch_id)) ?? null,
    };
  });
}

/**
 * Settles a clash: the appointment to cancel (if any, and still holding its slot) is cancelled
 * through the router like any status change, then the clash leaves the list. One this mode cannot
 * read (made elsewhere, not in this PC's copy while it works offline) is refused, never skipped:
 * the person chose to cancel it.
 */
export async function settleDoubleBooking(
  router: FailoverRouter,
  list: DoubleBookings,
  bookingId: string,
  otherId: string,
  choice: DoubleBookingChoice,
): Promise<void> {
  const cancel = choice === "cancel_booked" ? bookingId : choice === "cancel_existing" ? otherId : null;
  if (cancel !== null) {
    const row = await router.table("appointments").get(cancel);
    if (row === null) {
      throw new CvError(
        "unavailable",
        "Esa cita no se puede leer ahora (este equipo trabaja con su propia copia y no la tiene). " +
          "Intente de nuevo cuando haya conexión con la nube o con el servidor de la clínica.",
      );
    }
    if (HOLDING.includes(row.status)) {
      await router.table("appointments").update(cancel, { status: "cancelled" });
    }
  }
  await list.settleDoubleBooking(bookingId, otherId);
}
