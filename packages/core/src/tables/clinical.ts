import * as z from "zod";
import { email, patterned, phone, text, timestamp, uuid } from "./columns.js";
import { defineTable } from "./define-table.js";
import { APPOINTMENT_STATUSES, APPOINTMENT_TYPES, ENCOUNTER_STATUSES, PATIENT_SEXES } from "./enums.js";

/**
 * A patient. `branch_id` is the home branch; the patient may be seen at any branch.
 * Search by name goes through `cv_search_fold()` indexes (accent- and case-insensitive).
 */
export const patients = defineTable({
  name: "patients",
  columns: {
    branch_id: uuid(),
    first_name: text(),
    last_name: text(),
    /** Apellido materno; many patients have one, some do not. */
    second_last_name: text().nullable(),
    /**
     * National identity document (CURP, passport…), uppercase without spaces. Unique within a
     * branch, so the same person registered twice there — possibly on two tiers during an outage —
     * is caught, not duplicated; not across branches, which would tell anyone who tries that a
     * document belongs to a patient they may not see (sql/0001).
     */
    document_id: patterned(
      /^[A-Z0-9-]{4,32}$/,
      "must be 4–32 uppercase letters, digits or dashes",
    ).nullable(),
    birth_date: z.iso.date().refine((date) => date >= "1900-01-01", "must be on or after 1900-01-01"),
    sex: z.enum(PATIENT_SEXES),
    phone: phone(),
    email: email().nullable(),
    address: text().nullable(),
    allergies: text().nullable(),
    notes: text().nullable(),
  },
  foreignKeys: [{ column: "branch_id", references: "branches", onDelete: "restrict" }],
  uniques: [["branch_id", "document_id"]],
});

/** A booked visit. A room may be closed without losing its history, hence `set null`. */
export const appointments = defineTable({
  name: "appointments",
  columns: {
    branch_id: uuid(),
    room_id: uuid().nullable(),
    patient_id: uuid(),
    doctor_id: uuid().nullable(),
    starts_at: timestamp(),
    ends_at: timestamp(),
    status: z.enum(APPOINTMENT_STATUSES),
    reason: text(),
    type: z.enum(APPOINTMENT_TYPES),
    checked_in_at: timestamp().nullable(),
    notes: text().nullable(),
  },
  defaults: { status: "scheduled" },
  foreignKeys: [
    { column: "branch_id", references: "branches", onDelete: "restrict" },
    { column: "room_id", references: "rooms", onDelete: "set null" },
    { column: "patient_id", references: "patients", onDelete: "restrict" },
    { column: "doctor_id", references: "profiles", onDelete: "restrict" },
  ],
  checks: [
    {
      constraint: "appointments_ends_after_start",
      columns: ["starts_at", "ends_at"],
      field: "ends_at",
      message: "must be after starts_at",
      // Canonical timestamps sort chronologically as text.
      valid: (row) => row.ends_at > row.starts_at,
    },
  ],
});

/** A clinical encounter (consulta): what the doctor found and decided. */
export const encounters = defineTable({
  name: "encounters",
  columns: {
    patient_id: uuid(),
    appointment_id: uuid().nullable(),
    branch_id: uuid(),
    doctor_id: uuid(),
    started_at: timestamp(),
    ended_at: timestamp().nullable(),
    chief_complaint: text(),
    history: text().nullable(),
    assessment: text().nullable(),
    plan: text().nullable(),
    notes: text().nullable(),
    status: z.enum(ENCOUNTER_STATUSES),
  },
  defaults: { status: "open" },
  foreignKeys: [
    { column: "patient_id", references: "patients", onDelete: "restrict" },
    { column: "appointment_id", references: "appointments", onDelete: "restrict" },
    { column: "branch_id", references: "branches", onDelete: "restrict" },
    { column: "doctor_id", references: "profiles", onDelete: "restrict" },
  ],
  checks: [
    {
      constraint: "encounters_ends_after_start",
      columns: ["started_at", "ended_at"],
      field: "ended_at",
      message: "must not be before started_at",
      valid: (row) => row.ended_at === null || row.ended_at >= row.started_at,
    },
  ],
});
