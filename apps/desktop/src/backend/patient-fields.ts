import * as z from "zod";
import { todayIn } from "./day-range.js";

/*
 * A new patient's fields as reception types them. Each field fails with one Spanish message that
 * says what is expected, never the value received (it is patient data); the first failed check of
 * a field stops the rest (`abort`), so a field is listed once.
 */

/** A form's blank field is an absent value, not an empty one the database would refuse. */
export const blankToNull = (value: unknown) =>
  typeof value === "string" && value.trim() === "" ? null : value;

/** Kiribati's Line Islands (UTC+14) reach each date first: a later date is in the future everywhere. */
const EARLIEST_ZONE = "Pacific/Kiritimati";

export const FUTURE_BIRTH_DATE = "fecha de nacimiento: no puede ser una fecha futura";

/**
 * Checked here against the first zone to reach today, so a clearly future date is listed with the
 * other problems; the handler checks it again against the branch's own today.
 */
export const birthDate = z.iso
  .date({
    error: "fecha de nacimiento: use el formato AAAA-MM-DD, por ejemplo 1985-03-02",
    abort: true,
  })
  .refine((value) => value >= "1900-01-01", {
    message: "fecha de nacimiento: no puede ser anterior a 1900",
    abort: true,
  })
  .refine((value) => value <= todayIn(EARLIEST_ZONE), FUTURE_BIRTH_DATE);

const PHONE_MESSAGE = "teléfono: número de México de 10 dígitos, por ejemplo 55 1234 5678 o +52 55 1234 5678";

/** Ten digits, after +52 or 52 (and the old mobile 1 after it), once spaces, dashes, dots and parentheses are gone. */
const MEXICAN_PHONE = /^(?:\+?521?)?\d{10}$/;

export const isMexicanPhone = (value: string) => MEXICAN_PHONE.test(value.replace(/[\s().-]/g, ""));

/**
 * As typed, trimmed, dots turned into spaces and runs of spaces into one, so it fits the
 * database's `^\+?[0-9() -]{7,25}$`; past 25 characters (generous punctuation) it is stored as
 * `+52 55 1234 5678`.
 */
export function normalisePhone(value: string): string {
  const typed = value.trim().replace(/\./g, " ").replace(/\s+/g, " ");
  if (typed.length <= 25) return typed;
  const digits = value.replace(/\D/g, "").slice(-10);
  return `+52 ${digits.slice(0, 2)} ${digits.slice(2, 6)} ${digits.slice(6)}`;
}

export const mexicanPhone = z
  .string("teléfono: es obligatorio")
  .trim()
  .min(1, { message: "teléfono: es obligatorio", abort: true })
  .refine(isMexicanPhone, PHONE_MESSAGE)
  .transform(normalisePhone);

/** The shape of a CURP; its check digit and state code are not verified. */
const CURP = /^[A-Z]{4}\d{6}[HM][A-Z]{5}[A-Z0-9]\d$/;

export const CURP_MESSAGE =
  "CURP: 18 caracteres con el formato de la CURP (4 letras, fecha AAMMDD, H o M, 5 letras, una letra o dígito y un dígito)";

/** CURP, passport or another identity document: uppercase; 18 characters must read as a CURP. */
export const documentId = z
  .preprocess(
    blankToNull,
    z
      .string("documento: escriba el texto del documento")
      .trim()
      .toUpperCase()
      .regex(/^[A-Z0-9-]{4,32}$/, {
        message: "documento: 4 a 32 letras, dígitos o guiones (CURP, pasaporte…)",
        abort: true,
      })
      .refine((value) => value.length !== 18 || CURP.test(value), CURP_MESSAGE)
      .nullable(),
  )
  .default(null);

export const optionalEmail = z
  .preprocess(
    blankToNull,
    z
      .string("correo electrónico: escriba una dirección como nombre@dominio.mx")
      .trim()
      .toLowerCase()
      .pipe(z.email("correo electrónico: escriba una dirección como nombre@dominio.mx"))
      .nullable(),
  )
  .default(null);

export const optionalName = (what: string) =>
  z
    .preprocess(
      blankToNull,
      z.string(`${what}: debe ser texto`).trim().max(200, `${what}: demasiado largo`).nullable(),
    )
    .default(null);
