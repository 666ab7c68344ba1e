import { canonicalTimestamp } from "@centrovision/core";

/**
 * Text-format parsers that make `postgres` return rows already in canonical form, so a row needs
 * no second pass. With the session in UTC (see client-options.ts) `timestamptz(3)` prints as
 * `2026-11-30 15:05:00.5+00`; the fast path rewrites that shape, anything else goes through core.
 */
function parseTimestamp(text: string): string {
  const length = text.length;
  if (length >= 22 && length <= 26 && text[10] === " " && text.endsWith("+00") && text[4] === "-") {
    const fraction = length === 22 ? "000" : text.slice(20, length - 3).padEnd(3, "0");
    return `${text.slice(0, 10)}T${text.slice(11, 19)}.${fraction}Z`;
  }
  try {
    return canonicalTimestamp(text);
  } catch {
    // `infinity` and friends: a parser that throws leaves the driver's protocol state broken, so
    // the text is kept and the row check reports it.
    return text;
  }
}

/** int8 is not a column type of ours, but `count(*)` is one: no silent rounding past 2^53. */
function parseInt8(text: string): number | bigint {
  const value = Number(text);
  return Number.isSafeInteger(value) ? value : BigInt(text);
}

/**
 * Parameters go to the server as text and the server parses them: validation already
 * canonicalised timestamps, and a wrong value fails there as `invalid_input` instead of being
 * reinterpreted by the driver (its default turns a date string into a local-time `Date`).
 */
const asText = (value: unknown): string => (value instanceof Date ? value.toISOString() : String(value));

/** The `types` option of `postgres`: OIDs → parse/serialize. */
export const PG_TYPES = {
  timestamptz: { to: 1184, from: [1184], serialize: asText, parse: parseTimestamp },
  date: { to: 1082, from: [1082], serialize: asText, parse: (text: string) => text },
  numeric: { to: 1700, from: [1700], serialize: asText, parse: (text: string) => Number(text) },
  int8: { to: 20, from: [20], serialize: asText, parse: parseInt8 },
};
