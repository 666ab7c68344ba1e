/**
 * ISO-8601 (`T` separator) or PostgreSQL text output (space separator); offset `Z`, `±HH`,
 * `±HHMM`, `±HH:MM` or `±HH:MM:SS` (PostgreSQL prints seconds for historical local mean time).
 */
const TIMESTAMP =
  /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:(Z)|([+-])(\d{2})(?::?(\d{2}))?(?::(\d{2}))?)$/;

const CANONICAL_LENGTH = "2000-01-01T00:00:00.000Z".length;

function daysInMonth(year: number, month: number): number {
  // Day 0 of the next month is the last day of this one; UTC avoids DST gaps.
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

/**
 * Canonical form of a timestamp, or `undefined` when `value` is not one.
 * Used where an invalid value must be reported by a validator instead of thrown.
 */
export function tryCanonicalTimestamp(value: string | Date): string | undefined {
  if (value instanceof Date) {
    return Number.isNaN(value.getTime()) ? undefined : value.toISOString();
  }
  const match = TIMESTAMP.exec(value);
  if (match === null) return undefined;
  const [year, month, day, hour, minute, second] = match.slice(1, 7).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const fraction = match[7] ?? "";
  if (year < 100 || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return undefined;
  if (hour > 23 || minute > 59 || second > 59) return undefined;
  // PostgreSQL rounds to the column's precision (timestamptz(3)); do the same, half up.
  const millis = Number(fraction.padEnd(3, "0").slice(0, 3)) + (Number(fraction[3] ?? "0") >= 5 ? 1 : 0);
  const offsetSign = match[9] === "-" ? -1 : 1;
  const offsetSeconds =
    match[8] === "Z"
      ? 0
      : offsetSign * (Number(match[10]) * 3600 + Number(match[11] ?? "0") * 60 + Number(match[12] ?? "0"));
  const epoch = Date.UTC(year, month - 1, day, hour, minute, second, millis) - offsetSeconds * 1000;
  const canonical = new Date(epoch).toISOString();
  // Years past 9999 print as "+010000-…", which no longer sorts as text.
  return canonical.length === CANONICAL_LENGTH ? canonical : undefined;
}

/**
 * The canonical timestamp form shared by every source: UTC with milliseconds,
 * `YYYY-MM-DDTHH:mm:ss.sssZ`. Canonical strings of the same instant are equal and sort
 * chronologically as plain text, so rows from PostgreSQL, SQLite and memory compare byte for byte.
 *
 * Accepts a `Date`, ISO-8601 with any offset, or PostgreSQL's text output
 * (`2025-03-01 10:00:00.5-06`). Sub-millisecond digits are rounded like `timestamptz(3)` does.
 *
 * @throws RangeError when `value` is not a valid timestamp.
 */
export function canonicalTimestamp(value: string | Date): string {
  const canonical = tryCanonicalTimestamp(value);
  if (canonical === undefined) {
    throw new RangeError(
      `[core] not a timestamp: ${value instanceof Date ? "Invalid Date" : JSON.stringify(value)}`,
    );
  }
  return canonical;
}
