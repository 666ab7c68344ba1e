/**
 * The request headers that steer PostgREST: `Prefer`, `Range`, `Accept` and
 * the `Accept-Profile`/`Content-Profile` schema switch.
 */
import { ApiError } from "./errors.js";

export interface Preferences {
  readonly return?: "minimal" | "representation" | "headers-only";
  /** `planned` and `estimated` are answered with an exact count. */
  readonly count?: "exact" | "planned" | "estimated";
  readonly resolution?: "merge-duplicates" | "ignore-duplicates";
  readonly missing?: "default" | "null";
  readonly handling?: "strict" | "lenient";
  readonly maxAffected?: number;
}

const KNOWN: Record<string, readonly string[] | "integer"> = {
  return: ["minimal", "representation", "headers-only"],
  count: ["exact", "planned", "estimated"],
  resolution: ["merge-duplicates", "ignore-duplicates"],
  missing: ["default", "null"],
  handling: ["strict", "lenient"],
  "max-affected": "integer",
  // Recognised so that handling=strict accepts them; this gateway does not act on them.
  tx: ["commit", "rollback"],
  timezone: [],
};

type HeaderValue = string | string[] | undefined;

function values(header: HeaderValue): string[] {
  if (header === undefined) return [];
  return (Array.isArray(header) ? header : [header]).flatMap((v) => v.split(","));
}

/**
 * Parses every `Prefer` header: comma lists, first occurrence of a
 * preference wins, unknown ones are ignored unless `handling=strict`
 * (then 400 PGRST122, as PostgREST).
 */
export function parsePrefer(header: HeaderValue): Preferences {
  const seen = new Map<string, string>();
  const invalid: string[] = [];
  for (const raw of values(header)) {
    const item = raw.trim();
    if (item === "") continue;
    const [name = "", value = ""] = item.split("=", 2).map((part) => part.trim());
    const allowed = KNOWN[name];
    const valid =
      allowed === "integer"
        ? /^[0-9]+$/.test(value)
        : allowed !== undefined && (allowed.length === 0 || allowed.includes(value));
    if (!valid) invalid.push(item);
    else if (!seen.has(name)) seen.set(name, value);
  }
  if (seen.get("handling") === "strict" && invalid.length > 0) {
    throw new ApiError(
      400,
      "PGRST122",
      "Invalid preferences given with handling=strict",
      `Invalid preferences: ${invalid.join(", ")}`,
    );
  }
  const prefs: { -readonly [K in keyof Preferences]: Preferences[K] } = {};
  // Values were checked against KNOWN above, so these casts only narrow.
  if (seen.has("return")) prefs.return = seen.get("return") as Preferences["return"];
  if (seen.has("count")) prefs.count = seen.get("count") as Preferences["count"];
  if (seen.has("resolution")) prefs.resolution = seen.get("resolution") as Preferences["resolution"];
  if (seen.has("missing")) prefs.missing = seen.get("missing") as Preferences["missing"];
  if (seen.has("handling")) prefs.handling = seen.get("handling") as Preferences["handling"];
  if (seen.has("max-affected")) prefs.maxAffected = Number(seen.get("max-affected"));
  return prefs;
}

/** `Preference-Applied`, in PostgREST's fixed order, listing only what the response honoured. */
export function preferenceApplied(
  applied: Partial<
    Record<"resolution" | "missing" | "return" | "count" | "handling" | "max-affected", string>
  >,
): string | undefined {
  const order = ["resolution", "missing", "return", "count", "handling", "max-affected"] as const;
  const parts = order.flatMap((name) => (applied[name] === undefined ? [] : [`${name}=${applied[name]}`]));
  return parts.length > 0 ? parts.join(", ") : undefined;
}

/** `Range: a-b` or `a-` (GET only); anything else is ignored, as PostgREST does. */
export function parseRange(header: HeaderValue): { lower: number; upper?: number } | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  const match = value === undefined ? null : /^([0-9]+)-([0-9]*)$/.exec(value.trim());
  if (!match?.[1]) return undefined;
  const lower = Number(match[1]);
  return match[2] ? { lower, upper: Number(match[2]) } : { lower };
}

export type MediaKind = "json" | "object";

const MEDIA: Record<string, MediaKind> = {
  "*/*": "json",
  "application/*": "json",
  "application/json": "json",
  "application/vnd.pgrst.array+json": "json",
  "application/vnd.pgrst.object+json": "object",
  "application/vnd.pgrst.object": "object",
};

/** Picks the response media type from `Accept` by quality; none acceptable → 406 PGRST107. */
export function negotiateMedia(header: HeaderValue): MediaKind {
  const offered = values(header)
    .map((entry, index) => {
      const [type = "", ...params] = entry.split(";").map((part) => part.trim().toLowerCase());
      const q = params.find((p) => p.startsWith("q="));
      return { type, quality: q ? Number(q.slice(2)) : 1, index };
    })
    .filter((entry) => entry.type !== "")
    .sort((a, b) => b.quality - a.quality || a.index - b.index);
  if (offered.length === 0) return "json";
  for (const { type } of offered) {
    const kind = MEDIA[type];
    if (kind) return kind;
  }
  throw new ApiError(
    406,
    "PGRST107",
    `None of these media types are available: ${offered.map((entry) => entry.type).join(", ")}`,
  );
}

export const EXPOSED_SCHEMAS = ["public"] as const;

/**
 * The schema named by `Accept-Profile` (reads) or `Content-Profile` (writes).
 * Only `public` is exposed; another name → 406 PGRST106.
 * Returns whether the profile header was sent, so the response can echo it.
 */
export function negotiateSchema(header: HeaderValue): { schema: string; negotiated: boolean } {
  const value = Array.isArray(header) ? header[0] : header;
  if (value === undefined) return { schema: EXPOSED_SCHEMAS[0], negotiated: false };
  if (!(EXPOSED_SCHEMAS as readonly string[]).includes(value)) {
    throw new ApiError(
      406,
      "PGRST106",
      `Invalid schema: ${value}`,
      null,
      `Only the following schemas are exposed: ${EXPOSED_SCHEMAS.join(", ")}`,
    );
  }
  return { schema: value, negotiated: true };
}
