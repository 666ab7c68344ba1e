import { APPOINTMENT_STATUSES, APPOINTMENT_TYPES, PATIENT_SEXES, SYNCED_TABLES } from "@centrovision/core";
import * as z from "zod";
import { DOUBLE_BOOKING_CHOICES } from "./double-bookings.js";
import { choicesOf, SEX_LABELS, STATUS_LABELS, TYPE_LABELS } from "./labels.js";
import {
  birthDate,
  blankToNull,
  documentId,
  mexicanPhone,
  optionalEmail,
  optionalName,
} from "./patient-fields.js";

/*
 * Arguments of every invoke command. Messages are Spanish: the UI shows them to clinic staff as
 * they are. They describe what is expected, never the value received (which may be patient data).
 */

const id = (what: string) => z.guid(`${what}: debe ser un identificador válido (UUID)`);

const isoDate = z.iso
  .date("fecha inválida: use el formato AAAA-MM-DD, por ejemplo 2026-11-30")
  .refine((value) => !Number.isNaN(Date.parse(`${value}T00:00:00Z`)), "fecha inválida: ese día no existe");

const dateTime = z.iso.datetime({
  offset: true,
  message: "fecha y hora inválidas: use ISO 8601 con zona, por ejemplo 2026-11-30T09:00:00-06:00",
});

/** How late a booking may start: a patient booked at the desk for "now" is not refused. */
const PAST_GRACE_MS = 5 * 60_000;

const requiredText = (what: string) =>
  z
    .string(`${what}: es obligatorio`)
    .trim()
    .min(1, `${what}: es obligatorio`)
    .max(500, `${what}: demasiado largo`);

export const commandArgs = {
  get_session: z.object({}).strict(),
  sign_in: z
    .object({
      email: z.email("correo electrónico inválido").max(320, "correo electrónico demasiado largo"),
      password: z
        .string("contraseña: es obligatoria")
        .min(1, "contraseña: es obligatoria")
        .max(1_000, "contraseña: demasiado larga"),
    })
    .strict(),
  sign_out: z
    .object({
      /** Signs out even with writes of this person's still in this PC's outbox (they wait for them). */
      leave_unsent: z.boolean("leave_unsent: debe ser verdadero o falso").optional(),
    })
    .strict(),
  get_connection_status: z.object({}).strict(),
  get_app_info: z.object({}).strict(),
  trigger_sync: z.object({}).strict(),
  list_branches: z.object({}).strict(),
  list_staff: z.object({ branch_id: id("sucursal") }).strict(),
  get_appointments: z.object({ branch_id: id("sucursal"), date: isoDate }).strict(),
  create_appointment: z
    .object({
      branch_id: id("sucursal"),
      patient_id: id("paciente"),
      room_id: z.preprocess(blankToNull, id("consultorio").nullable()).default(null),
      doctor_id: z.preprocess(blankToNull, id("médico").nullable()).default(null),
      starts_at: dateTime.refine((value) => {
        const at = Date.parse(value);
        // A booking made a few minutes late (the patient at the desk) is not "past".
        return Number.isNaN(at) || at >= Date.now() - PAST_GRACE_MS;
      }, "La hora de la cita ya pasó: elija una hora futura."),
      duration_minutes: z
        .number("duración: debe ser un número de minutos")
        .int("duración: minutos enteros")
        .min(5, "duración: al menos 5 minutos")
        .max(480, "duración: como máximo 8 horas")
        .default(30),
      reason: requiredText("motivo"),
      type: z.enum(APPOINTMENT_TYPES, `tipo de cita: elija ${choicesOf(TYPE_LABELS)}`),
      notes: z.string("notas: debe ser texto").max(2000, "notas: demasiado largas").nullable().default(null),
      /** The receptionist confirmed a double booking (same patient, doctor or room at that time). */
      allow_overlap: z.boolean("confirmación de cita doble: verdadero o falso").default(false),
    })
    .strict(),
  update_appointment_status: z
    .object({
      appointment_id: id("cita"),
      status: z.enum(APPOINTMENT_STATUSES, `estado: elija ${choicesOf(STATUS_LABELS)}`),
    })
    .strict(),
  search_patients: z
    .object({
      query: z
        .string("búsqueda: escriba un nombre o documento")
        .trim()
        .min(2, "búsqueda: escriba al menos 2 letras"),
      branch_id: id("sucursal").optional(),
      limit: z.number().int().min(1).max(100, "límite: como máximo 100").default(20),
    })
    .strict(),
  create_patient: z
    .object({
      branch_id: id("sucursal"),
      first_name: requiredText("nombre"),
      last_name: requiredText("apellido paterno"),
      second_last_name: optionalName("apellido materno"),
      document_id: documentId,
      birth_date: birthDate,
      sex: z.enum(PATIENT_SEXES, `sexo: elija ${choicesOf(SEX_LABELS)}`),
      phone: mexicanPhone,
      email: optionalEmail,
    })
    .strict(),
  open_patient: z.object({ patient_id: id("paciente") }).strict(),
  get_audit_trail: z
    .object({
      patient_id: id("paciente").optional(),
      user_id: id("usuario").optional(),
      from: dateTime.optional(),
      to: dateTime.optional(),
      limit: z
        .number("límite: debe ser un número")
        .int("límite: un número entero")
        .min(1, "límite: al menos 1")
        .max(1000, "límite: como máximo 1000")
        .default(200),
    })
    .strict()
    .refine((args) => args.from === undefined || args.to === undefined || args.from < args.to, {
      message: "periodo: la fecha final debe ser posterior a la inicial",
      path: ["to"],
    }),
  list_conflicts: z.object({ status: z.enum(["open", "resolved", "all"]).default("open") }).strict(),
  resolve_conflict: z
    .object({
      conflict_id: id("conflicto"),
      keep: z
        .enum(["local", "remote"], "resolución: elija conservar la versión local o la remota")
        .optional(),
      merged: z.record(z.string(), z.unknown()).optional(),
    })
    .strict()
    .refine((args) => (args.keep === undefined) !== (args.merged === undefined), {
      message: "resolución: indique keep (local o remote) o merged, solo uno",
      path: ["keep"],
    }),
  list_dead_letters: z.object({}).strict(),
  retry_dead_letter: z
    .object({ table: z.enum(SYNCED_TABLES, "tabla desconocida"), id: id("registro") })
    .strict(),
  discard_dead_letter: z
    .object({ table: z.enum(SYNCED_TABLES, "tabla desconocida"), id: id("registro") })
    .strict(),
  list_double_bookings: z.object({}).strict(),
  settle_double_booking: z
    .object({
      booking_id: id("cita agendada sin conexión"),
      other_id: id("cita que ya existía"),
      choice: z.enum(
        DOUBLE_BOOKING_CHOICES,
        "decisión: mantener ambas (keep_both), cancelar la agendada sin conexión (cancel_booked) o cancelar la que ya existía (cancel_existing)",
      ),
    })
    .strict(),
} as const;

export type CommandName = keyof typeof commandArgs;

/** What answers while nobody is signed in: the session itself and the connection icon (no patient data). */
export const PUBLIC_COMMANDS: ReadonlySet<CommandName> = new Set<CommandName>([
  "get_session",
  "sign_in",
  "sign_out",
  "get_connection_status",
  "get_app_info",
]);
export type CommandArgs<C extends CommandName> = z.output<(typeof commandArgs)[C]>;

export function isCommandName(name: string): name is CommandName {
  return Object.hasOwn(commandArgs, name);
}
