import * as z from "zod";
import { patterned, text, timestamp, uuid } from "./columns.js";
import { defineTable } from "./define-table.js";
import { DIAGNOSIS_STATUSES, EYES, IOP_METHODS, LATERALITIES } from "./enums.js";

/** Snellen fraction in feet (`20/40`, `20/25-2`) or a low-vision notation (count fingers, hand motion, light perception). */
const snellen = () =>
  patterned(
    /^(20\/[1-9][0-9]{0,3}([+-][1-4])?|CF|HM|LP|NLP)$/,
    "must be Snellen like 20/40, or CF/HM/LP/NLP",
  );

/** logMAR, the numeric form of visual acuity: −0.30 (20/10) to 3.00 (no light perception). */
const logmar = () => z.number().min(-0.3).max(3).multipleOf(0.01);

/** Dioptres in quarter steps, the resolution of trial lenses and phoropters. */
const dioptres = (min: number, max: number) => z.number().min(min).max(max).multipleOf(0.25);

/** The examination of one eye during an encounter: visual acuity, pressure, refraction, biomicroscopy. */
export const exam_eye = defineTable({
  name: "exam_eye",
  columns: {
    encounter_id: uuid(),
    eye: z.enum(EYES),
    uncorrected_va: snellen().nullable(),
    uncorrected_va_logmar: logmar().nullable(),
    best_corrected_va: snellen().nullable(),
    best_corrected_va_logmar: logmar().nullable(),
    /** numeric(4,1): one decimal, as tonometers report. */
    iop_mmhg: z.number().min(0).max(80).multipleOf(0.1).nullable(),
    iop_method: z.enum(IOP_METHODS).nullable(),
    refraction_sphere: dioptres(-30, 30).nullable(),
    refraction_cylinder: dioptres(-15, 15).nullable(),
    refraction_axis: z.int().min(0).max(180).nullable(),
    /** Near addition for presbyopia. */
    refraction_add: dioptres(0, 4).nullable(),
    pupil: text().nullable(),
    anterior_segment: text().nullable(),
    posterior_segment: text().nullable(),
  },
  foreignKeys: [{ column: "encounter_id", references: "encounters", onDelete: "restrict" }],
  uniques: [["encounter_id", "eye"]],
  checks: [
    {
      constraint: "exam_eye_axis_with_cylinder",
      columns: ["refraction_cylinder", "refraction_axis"],
      field: "refraction_axis",
      message: "is required when refraction_cylinder is not zero",
      valid: (row) =>
        row.refraction_cylinder === null || row.refraction_cylinder === 0 || row.refraction_axis !== null,
    },
  ],
});

/** A diagnosis made in an encounter, coded in ICD-10 (CIE-10). */
export const diagnoses = defineTable({
  name: "diagnoses",
  columns: {
    encounter_id: uuid(),
    patient_id: uuid(),
    icd10_code: patterned(/^[A-TV-Z][0-9][0-9AB](\.[0-9A-TV-Z]{1,4})?$/, "must be an ICD-10 code like H40.1"),
    description: text(),
    /** Which eye; null when the diagnosis is not ocular (e.g. diabetes E11.9). */
    eye: z.enum(LATERALITIES).nullable(),
    status: z.enum(DIAGNOSIS_STATUSES),
    diagnosed_at: timestamp(),
  },
  defaults: { status: "active" },
  foreignKeys: [
    { column: "encounter_id", references: "encounters", onDelete: "restrict" },
    { column: "patient_id", references: "patients", onDelete: "restrict" },
  ],
});
