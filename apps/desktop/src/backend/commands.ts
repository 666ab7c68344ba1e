import { randomUUID } from "node:crypto";
import {
  type ConnectionStatus,
  CvError,
  type FailoverRouter,
  type InputIssue,
  PRODUCT_VERSION,
  zodIssues,
} from "@centrovision/core";
import { type OfflineTier, OTHER_PERSONS_EDIT } from "@centrovision/offline";
import type {
  ConflictQuery,
  ConflictResolution,
  ResolveResult,
  SyncConflict,
} from "@centrovision/sync-engine";
import { agendaOf, fullName, staffOf } from "./agenda.js";
import { checkBranchStaff, checkOverlaps } from "./booking.js";
import { branchFor, listBranches } from "./branch-access.js";
import {
  type CommandArgs,
  type CommandName,
  commandArgs,
  isCommandName,
  PUBLIC_COMMANDS,
} from "./command-args.js";
import { todayIn } from "./day-range.js";
import { listDoubleBookings, settleDoubleBooking } from "./double-bookings.js";
import { invalidInput } from "./input-issues.js";
import type { PatientAudit } from "./patient-audit.js";
import { FUTURE_BIRTH_DATE } from "./patient-fields.js";
import { authorOf, type PcSession, type SessionUser, type SignInMethod } from "./session.js";

/**
 * Conflict review on the clinic server (a sync engine, or a `createPostgresPeer` with a
 * `centrovision_sync` login, fits) and, when this process runs the engine, a way to sync now.
 */
export interface SyncControl {
  listConflicts(query?: ConflictQuery): Promise<SyncConflict[]>;
  resolveConflict(
    id: string,
    resolution: ConflictResolution,
    options?: { resolvedBy?: string },
  ): Promise<ResolveResult>;
  syncNow?(): Promise<unknown>;
}

/**
 * The PC's offline tier: the writes a server refused for good, kept until a person decides, and
 * its own sync state, outbox and what its copy lacks, for the status icon.
 */
export type OfflineControl = Pick<
  OfflineTier,
  | "deadLetters"
  | "retryDeadLetter"
  | "discardDeadLetter"
  | "pendingCount"
  | "syncState"
  | "copyGaps"
  | "waitingForOthers"
  | "source"
  | "doubleBookings"
  | "settleDoubleBooking"
>;

export type { AgendaItem, BranchStaff } from "./agenda.js";
export type { BranchView } from "./branch-access.js";
export type { DoubleBookingChoice, DoubleBookingView } from "./double-bookings.js";

export interface CommandContext {
  router: FailoverRouter;
  /** This PC's own branch (`branch_id` in its config): the only one its offline copy holds. */
  homeBranchId: string;
  /** Who is signed in on this PC: every command but {@link PUBLIC_COMMANDS} needs someone. */
  session: Pick<PcSession, "current" | "signIn" | "signOut">;
  sync?: SyncControl;
  offline?: OfflineControl;
  /** Every opening of a patient's record goes in the audit trail; administrators read it. */
  audit: Pick<PatientAudit, "opened" | "trail">;
}

/** What `get_session` and `sign_in` answer. */
export type SessionView =
  | { signedIn: false }
  | {
      signedIn: true;
      user: SessionUser;
      method: SignInMethod;
      expiresAt: string | null;
      /** Signed in without the cloud (at the clinic server or on this PC) while it is back: sign in online to use it. */
      needsOnlineSignIn: boolean;
      /**
       * Neither server may be used on this person's behalf (the clinic session expired in a long
       * outage, or was never held) while the clinic server answers: sign in again to work on it.
       */
      needsClinicSignIn: boolean;
      /** Holds the admin role: may read the audit trail (the server checks it again). */
      admin: boolean;
      /**
       * Other people's offline writes waiting on this PC for their next sign-in here (only their
       * session sends them, or settles those a server refused): each author's name as this person
       * may read it (null when they may not), how many wait to be sent, and how many were refused.
       */
      othersUnsent: { name: string | null; changes: number; refused: number }[];
    };

/**
 * The router's status; while it is held below a cloud that answers only because nobody is signed
 * in online, the reason says so (the router's own words would be "cloud stopped answering").
 */
function routerStatus({ router, session }: CommandContext): ConnectionStatus {
  const status = router.getStatus();
  const state = session.current();
  if (!state.signedIn && status.pinned !== null)
    return { ...status, reason: "no server is used until a person signs in" };
  const cloudHeld = status.pinned !== null && !(state.signedIn && state.cloudUsable);
  if (cloudHeld && status.tiers.cloud.health === "up")
    return { ...status, reason: "the cloud is used only for a person signed in online" };
  const clinicHeld = status.pinned === "device" && !(state.signedIn && state.clinicUsable);
  if (clinicHeld && status.tiers.clinic.health === "up")
    return { ...status, reason: "the clinic server is used only for a person with a clinic session" };
  return status;
}

/**
 * The status as of this call: the router publishes it once per tick, so this PC's own sync state,
 * what its copy lacks (for the person signed in: the copy is theirs; left out if it cannot be
 * read), and offline its outbox count, are read now (a write made offline shows in the very next
 * poll).
 */
async function connectionStatus(ctx: CommandContext): Promise<ConnectionStatus> {
  const status = routerStatus(ctx);
  const { offline, session } = ctx;
  if (offline === undefined) return status;
  const notInCopy = session.current().signedIn ? await offline.copyGaps().catch(() => undefined) : undefined;
  const synced = { ...status, ...offline.syncState(), ...(notInCopy !== undefined && { notInCopy }) };
  if (status.mode !== "offline") return synced;
  return { ...synced, pendingChanges: await offline.pendingCount() };
}

async function sessionView({ session, router, offline }: CommandContext): Promise<SessionView> {
  const state = session.current();
  if (!state.signedIn) return { signedIn: false };
  const { user, method, expiresAt } = state;
  const { tiers } = router.getStatus();
  const needsOnlineSignIn = method !== "online" && tiers.cloud.health === "up";
  // Neither server serves this person while the clinic server answers: their cloud session is
  // expired or the cloud is down, and they hold no clinic session (expired, or the internet went
  // before the cloud could hand one out).
  const cloudServes = state.cloudUsable && tiers.cloud.health !== "down";
  const needsClinicSignIn =
    !needsOnlineSignIn && !cloudServes && !state.clinicUsable && tiers.clinic.health === "up";
  const admin = await isAdmin(router, user.id);
  const othersUnsent = offline === undefined ? [] : await waitingForOthers(offline);
  return {
    signedIn: true,
    user,
    method,
    expiresAt,
    needsOnlineSignIn,
    needsClinicSignIn,
    admin,
    othersUnsent,
  };
}

/**
 * Whose offline writes wait on this PC, named from this person's copy (a colleague's profile is in
 * it; anyone else's stays unnamed): no server is asked, the session is read every few seconds.
 */
async function waitingForOthers(
  offline: OfflineControl,
): Promise<{ name: string | null; changes: number; refused: number }[]> {
  const waiting = await offline.waitingForOthers().catch(() => []);
  return Promise.all(
    waiting.map(async ({ author, changes, refused }) => {
      const profile = await offline.source
        .table("profiles")
        .get(author)
        .catch(() => null);
      return { name: profile?.full_name ?? null, changes, refused };
    }),
  );
}

/** Whether a person holds the admin role, read at most every few minutes per router (the UI polls the session). */
const ADMIN_TTL_MS = 5 * 60_000;
const adminRoles = new WeakMap<FailoverRouter, { userId: string; admin: boolean; at: number }>();

async function isAdmin(router: FailoverRouter, userId: string): Promise<boolean> {
  const known = adminRoles.get(router);
  if (known?.userId === userId && Date.now() - known.at < ADMIN_TTL_MS) return known.admin;
  try {
    const roles = await router
      .table("user_roles")
      .list({ where: { user_id: userId, role: "admin" }, limit: 1 });
    adminRoles.set(router, { userId, admin: roles.length > 0, at: Date.now() });
    return roles.length > 0;
  } catch {
    // Only decides whether the app offers the audit trail (the server checks again): unknown is no.
    return false;
  }
}

const fold = (text: string) => text.normalize("NFD").replace(/\p{M}/gu, "").toLowerCase();

/**
 * What signing out leaves on this PC for this person alone, in words (null: nothing): writes no
 * server has yet, which their next sign-in here sends, and writes a server refused, which they
 * review in Conflictos. `null` counts: they could not be read.
 */
function leftBehind(counts: { unsent: number; refused: number } | null): string | null {
  if (counts === null)
    return "No se pudo comprobar si quedan en este equipo cambios suyos sin enviar: si los hay, solo usted podrá enviarlos al volver a iniciar sesión aquí.";
  const { unsent, refused } = counts;
  const made = unsent === 1 ? "1 cambio hecho" : `${unsent} cambios hechos`;
  const reach = unsent === 1 ? "llega" : "llegan";
  const rejected =
    refused === 1 ? "1 cambio que el servidor rechazó" : `${refused} cambios que el servidor rechazó`;
  if (refused === 0) {
    if (unsent === 0) return null;
    return `Tiene ${made} en este equipo que aún no ${reach} a un servidor: ${unsent === 1 ? "se enviará" : "se enviarán"} cuando vuelva a iniciar sesión aquí, y nadie más puede ${unsent === 1 ? "enviarlo" : "enviarlos"}.`;
  }
  if (unsent === 0)
    return `Tiene ${rejected}, por revisar en Conflictos: solo usted puede ${refused === 1 ? "revisarlo" : "revisarlos"}, al volver a iniciar sesión en este equipo.`;
  return `Tiene ${made} en este equipo que aún no ${reach} a un servidor y ${rejected}, por revisar en Conflictos: solo usted puede enviarlos o revisarlos, al volver a iniciar sesión aquí.`;
}

function notFound(message: string, path: string): CvError {
  return new CvError("not_found", message, { issues: [{ path, message }] });
}

function noSync(): CvError {
  return new CvError(
    "unavailable",
    "La revisión de conflictos se hace en el servidor de la clínica; este equipo no tiene acceso al motor de sincronización.",
  );
}

/**
 * Conflict review reads the clinic server: when it does not answer, say that, not the generic
 * "no connection" (this PC may be working fine on its own copy).
 */
async function onClinicServer<T>(sync: SyncControl | undefined, work: (sync: SyncControl) => Promise<T>) {
  if (sync === undefined) throw noSync();
  try {
    return await work(sync);
  } catch (error) {
    if (error instanceof CvError && (error.code === "unavailable" || error.code === "timeout")) {
      throw new CvError(
        "unavailable",
        "La revisión de conflictos necesita el servidor de la clínica, que ahora no responde. Intente de nuevo en unos minutos.",
        { cause: error },
      );
    }
    throw error;
  }
}

type Handlers = { [C in CommandName]: (ctx: CommandContext, args: CommandArgs<C>) => Promise<unknown> };

const handlers: Handlers = {
  get_session: async (ctx) => sessionView(ctx),

  // A cloud the router found down is tried only briefly before this PC's verifier.
  sign_in: async (ctx, { email, password }) => {
    const cloudDown = ctx.router.getStatus().tiers.cloud.health === "down";
    await ctx.session.signIn(email, password, { cloudDown });
    return sessionView(ctx);
  },

  // Writes made on this PC while offline are sent with their author's session only: signing out
  // leaves them waiting for that person's next sign-in here, which is said first.
  sign_out: async ({ session, offline }, { leave_unsent }) => {
    if (leave_unsent !== true && offline !== undefined && session.current().signedIn) {
      const waiting = await Promise.all([offline.pendingCount(), offline.deadLetters()]).catch(() => null);
      const message = leftBehind(waiting && { unsent: waiting[0], refused: waiting[1].length });
      if (message !== null)
        throw new CvError("conflict", message, { issues: [{ path: "leave_unsent", message }] });
    }
    await session.signOut();
    return { signedIn: false };
  },

  get_connection_status: async (ctx) => connectionStatus(ctx),

  get_app_info: async () => ({ version: PRODUCT_VERSION }),

  trigger_sync: async (ctx) => {
    await ctx.sync?.syncNow?.();
    return connectionStatus(ctx);
  },

  list_branches: async (ctx) => listBranches(ctx),

  list_staff: async (ctx, { branch_id }) => staffOf(ctx.router, (await branchFor(ctx, branch_id)).id),

  get_appointments: async (ctx, { branch_id, date }) =>
    agendaOf(ctx.router, await branchFor(ctx, branch_id), date),

  create_appointment: async (ctx, args) => {
    const { router } = ctx;
    const { duration_minutes, allow_overlap, ...fields } = args;
    const branch = await branchFor(ctx, args.branch_id);
    const patient = await router.table("patients").get(args.patient_id);
    if (patient === null)
      throw notFound("El paciente indicado no existe; búsquelo o regístrelo primero.", "patient_id");
    const start = new Date(args.starts_at);
    const booking = {
      branch,
      patient_id: args.patient_id,
      doctor_id: args.doctor_id,
      room_id: args.room_id,
      starts_at: start.toISOString(),
      ends_at: new Date(start.getTime() + duration_minutes * 60_000).toISOString(),
    };
    await checkBranchStaff(router, booking);
    if (!allow_overlap) await checkOverlaps(router, booking);
    return router.table("appointments").insert({
      ...fields,
      id: randomUUID(),
      starts_at: booking.starts_at,
      ends_at: booking.ends_at,
      status: "scheduled",
    });
  },

  update_appointment_status: async ({ router }, { appointment_id, status }) => {
    const appointments = router.table("appointments");
    if ((await appointments.get(appointment_id)) === null) {
      throw notFound("La cita indicada no existe.", "appointment_id");
    }
    return appointments.update(appointment_id, {
      status,
      ...(status === "checked_in" && { checked_in_at: new Date().toISOString() }),
    });
  },

  // Repositories filter by equality and ranges only; the agenda's patient lists are small enough
  // (a branch's patients) to fold accents and case here, as the cloud's cv_search_fold index does.
  search_patients: async ({ router }, { query, branch_id, limit }) => {
    const wanted = fold(query).split(/\s+/).filter(Boolean);
    const document = query.toUpperCase().replace(/\s+/g, "");
    const patients = await router.table("patients").list({
      ...(branch_id !== undefined && { where: { branch_id } }),
      orderBy: [{ column: "last_name" }, { column: "first_name" }],
      limit: 10_000,
    });
    return patients
      .filter((p) => p.document_id === document || wanted.every((word) => fold(fullName(p)).includes(word)))
      .slice(0, limit)
      .map((p) => ({ ...p, full_name: fullName(p) }));
  },

  create_patient: async (ctx, args) => {
    const branch = await branchFor(ctx, args.branch_id);
    // The arguments refused dates after today anywhere on Earth; today is the branch's.
    if (args.birth_date > todayIn(branch.timezone)) {
      throw invalidInput([{ path: "birth_date", message: FUTURE_BIRTH_DATE }]);
    }
    try {
      return await ctx.router.table("patients").insert({ ...args, id: randomUUID() });
    } catch (error) {
      if (error instanceof CvError && error.code === "constraint") {
        const message = "Ya existe un paciente con ese documento; búsquelo en lugar de registrarlo de nuevo.";
        throw new CvError("constraint", message, { issues: [{ path: "document_id", message }] });
      }
      throw error;
    }
  },

  open_patient: async ({ router, session, audit }, { patient_id }) => {
    const patient = await router.table("patients").get(patient_id);
    if (patient === null) {
      throw notFound(
        "El paciente no está disponible: no existe o no se puede consultar en el modo de trabajo actual.",
        "patient_id",
      );
    }
    const appointments = await router.table("appointments").list({
      where: { patient_id },
      orderBy: [{ column: "starts_at", direction: "desc" }],
      limit: 20,
    });
    const state = session.current();
    if (!state.signedIn) throw new CvError("unauthorized", "Inicie sesión para consultar un expediente.");
    // Recorded (or kept on this PC to be) before the record is shown.
    const recorded = await audit.opened(patient_id, state.user.id);
    return { patient: { ...patient, full_name: fullName(patient) }, appointments, audit: recorded };
  },

  get_audit_trail: async ({ audit }, { patient_id, user_id, from, to, limit }) =>
    audit.trail({
      ...(patient_id !== undefined && { patientId: patient_id }),
      ...(user_id !== undefined && { userId: user_id }),
      ...(from !== undefined && { from }),
      ...(to !== undefined && { to }),
      limit,
    }),

  list_conflicts: async ({ sync }, { status }) => onClinicServer(sync, (on) => on.listConflicts({ status })),

  resolve_conflict: async ({ sync, session }, { conflict_id, keep, merged }) => {
    const resolution: ConflictResolution = keep !== undefined ? { keep } : { merged: merged ?? {} };
    const resolvedBy = `${authorOf(session.current()) ?? "unknown"} on desktop`;
    return onClinicServer(sync, (on) => on.resolveConflict(conflict_id, resolution, { resolvedBy }));
  },

  list_dead_letters: async ({ offline }) => (offline === undefined ? [] : offline.deadLetters()),

  retry_dead_letter: async ({ offline }, { table, id }) => {
    await deadLetterOf(offline, table, id);
    await offline?.retryDeadLetter(table, id);
    return { retried: true };
  },

  // The local edit is dropped and the row copied again from the best server that answers (never
  // from this PC's copy, which holds the edit).
  discard_dead_letter: async ({ offline, router }, { table, id }) => {
    await deadLetterOf(offline, table, id);
    await offline?.discardDeadLetter(table, id, router.servers());
    return { discarded: true };
  },

  list_double_bookings: async ({ offline, router }) =>
    offline === undefined ? [] : listDoubleBookings(router, offline),

  settle_double_booking: async ({ offline, router }, { booking_id, other_id, choice }) => {
    const [booking, other] = [booking_id.toLowerCase(), other_id.toLowerCase()];
    const listed = (await offline?.doubleBookings()) ?? [];
    if (offline === undefined || !listed.some((n) => n.bookingId === booking && n.otherId === other)) {
      throw notFound("Esa cita doble ya no está por revisar (quizá ya se resolvió).", "booking_id");
    }
    await settleDoubleBooking(router, offline, booking, other, choice);
    return { settled: true };
  },
};

async function deadLetterOf(offline: OfflineControl | undefined, table: string, id: string): Promise<void> {
  const letters = (await offline?.deadLetters()) ?? [];
  if (!letters.some((letter) => letter.table === table && letter.id === id)) {
    throw notFound("Ese cambio rechazado no existe (quizá ya se reintentó o descartó).", "id");
  }
}

/** What a rejected invoke carries across the transport: a stable code and a Spanish message. */
export interface InvokeFailure {
  readonly code: CvError["code"];
  readonly message: string;
  readonly issues?: readonly InputIssue[];
}

const SPANISH: Partial<Record<CvError["code"], string>> = {
  // True in every mode: on this PC's own copy too, a call that needs a server reads this.
  unavailable:
    "No se pudo consultar el servidor: sin conexión en este momento. Intente de nuevo en unos segundos.",
  timeout: "El servidor tardó demasiado en responder. Intente de nuevo.",
  conflict: "Otra persona modificó este registro al mismo tiempo. Recargue y vuelva a intentarlo.",
  unauthorized: "La sesión no tiene permiso para esta acción. Vuelva a iniciar sesión.",
  unknown: "Ocurrió un error inesperado. Avise al responsable de sistemas.",
};

/** Turns any failure into an {@link InvokeFailure}; messages we wrote are kept, library ones translated. */
export function toInvokeFailure(error: unknown): InvokeFailure {
  const cv = error instanceof CvError ? error : new CvError("unknown", "unexpected failure");
  const ours = cv.message !== "" && !cv.message.startsWith("[");
  const issues = cv.issues.length > 0 ? { issues: cv.issues } : {};
  if (ours) return { code: cv.code, message: cv.message, ...issues };
  if (cv.constraint === OTHER_PERSONS_EDIT) {
    return {
      code: cv.code,
      message:
        "Otra persona modificó este registro en este equipo sin conexión y su cambio aún no se ha enviado: se enviará cuando vuelva a iniciar sesión aquí. Podrá modificarlo cuando el equipo vuelva a conectarse al servidor.",
    };
  }
  if (cv.code === "invalid_input" || cv.code === "constraint") {
    const fields = cv.issues.map((issue) => issue.path).join(", ");
    return { code: cv.code, message: `Datos inválidos${fields ? ` en: ${fields}` : ""}.`, ...issues };
  }
  return { code: cv.code, message: SPANISH[cv.code] ?? SPANISH.unknown ?? "", ...issues };
}

/** Validates the arguments and runs one command; rejects with a `CvError` (never a raw one). */
export async function runCommand(ctx: CommandContext, command: string, rawArgs: unknown): Promise<unknown> {
  if (!isCommandName(command)) {
    throw new CvError("not_found", `Comando desconocido: ${command.slice(0, 60)}.`, {
      issues: [{ path: "command", message: "comando desconocido" }],
    });
  }
  if (!PUBLIC_COMMANDS.has(command) && !ctx.session.current().signedIn) {
    throw new CvError("unauthorized", "Inicie sesión para continuar.");
  }
  const parsed = commandArgs[command].safeParse(rawArgs ?? {});
  if (!parsed.success) throw invalidInput(zodIssues(parsed.error, "(args)", "argumento desconocido"));
  const handler = handlers[command] as (ctx: CommandContext, args: unknown) => Promise<unknown>;
  return handler(ctx, parsed.data);
}
