/*
 * Values of the PostgreSQL ENUM types in sql/0001_ehr_schema.sql, in the same order
 * (ENUM order is the sort order in SQL, so it is part of the contract).
 */

/** `room_kind` */
export const ROOM_KINDS = ["consultation", "optometry", "diagnostics", "procedure", "surgery"] as const;

/** `staff_role`: what a user may do in the clinic, independent of branch. */
export const STAFF_ROLES = ["admin", "doctor", "optometrist", "nurse", "reception", "technician"] as const;

/** `patient_sex`: sex recorded for clinical purposes. */
export const PATIENT_SEXES = ["female", "male", "intersex", "unknown"] as const;

/** `appointment_status`, in the order an appointment normally moves through them. */
export const APPOINTMENT_STATUSES = [
  "scheduled",
  "confirmed",
  "checked_in",
  "in_progress",
  "completed",
  "cancelled",
  "no_show",
] as const;

/** `appointment_type` */
export const APPOINTMENT_TYPES = [
  "first_visit",
  "follow_up",
  "post_op",
  "surgery",
  "study",
  "emergency",
] as const;

/** `encounter_status`: a signed encounter is the legal clinical record. */
export const ENCOUNTER_STATUSES = ["open", "signed"] as const;

/** `eye`: oculus dexter (right), oculus sinister (left). */
export const EYES = ["OD", "OS"] as const;

/** `laterality`: an eye or both (oculus uterque). */
export const LATERALITIES = ["OD", "OS", "OU"] as const;

/** `iop_method`: how intraocular pressure was measured (readings differ by method). */
export const IOP_METHODS = ["goldmann", "icare", "pneumotonometer", "tonopen"] as const;

/** `diagnosis_status` */
export const DIAGNOSIS_STATUSES = ["active", "resolved", "ruled_out"] as const;
