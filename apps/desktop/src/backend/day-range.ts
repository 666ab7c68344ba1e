/** `YYYY-MM-DD` of today (of `now`) in a time zone. Pure: the UI uses it too. */
export function todayIn(timeZone: string, now = new Date()): string {
  return new Intl.DateTimeFormat("en-CA", { timeZone }).format(now);
}

/**
 * Start and end (exclusive) of a calendar day in a branch's time zone, as UTC ISO times: the
 * agenda of "2026-11-30" in Mexico City is 06:00Z to 06:00Z the next day, whatever the server's
 * own zone. DST days are 23 or 25 hours long, so each midnight is resolved on its own.
 */
export function dayRange(date: string, timeZone: string): { gte: string; lt: string } {
  const next = new Date(`${date}T00:00:00Z`);
  next.setUTCDate(next.getUTCDate() + 1);
  return { gte: zonedMidnight(date, timeZone), lt: zonedMidnight(next.toISOString().slice(0, 10), timeZone) };
}

function offsetMs(at: Date, timeZone: string): number {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone,
    hourCycle: "h23",
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  }).formatToParts(at);
  const get = (type: string) => Number(parts.find((part) => part.type === type)?.value);
  const wall = Date.UTC(get("year"), get("month") - 1, get("day"), get("hour"), get("minute"), get("second"));
  return wall - at.getTime();
}

function zonedMidnight(date: string, timeZone: string): string {
  const utcMidnight = new Date(`${date}T00:00:00Z`);
  // Two passes: the offset at the guess can differ from the offset at the answer across a DST change.
  let guess = utcMidnight.getTime() - offsetMs(utcMidnight, timeZone);
  guess = utcMidnight.getTime() - offsetMs(new Date(guess), timeZone);
  return new Date(guess).toISOString();
}
