/**
 * The request headers that steer PostgREST: `Prefer`, `Accept` and the
 * `Accept-Profile`/`Content-Profile` schema switch.
 */
import { ApiError, notImplemented } from "./errors.js";

export interface Preferences {
  readonly return?: "minimal" | "representation";
  readonly resolution?: "merge-duplicates";
}

const SUPPORTED = new Set(["return=minimal", "return=representation", "resolution=merge-duplicates"]);
/**
 * Preferences PostgREST (as Supabase configures it) acts on and this gateway does not. Ignoring
 * one would answer something else than the cloud (no count, other rows written), so it is refused.
 */
const REFUSED =
  /^(count=(exact|planned|estimated)|missing=default|handling=strict|timezone=.+|return=headers-only|resolution=ignore-duplicates)$/;

type HeaderValue = string | string[] | undefined;

function values(header: HeaderValue): string[] {
  if (header === undefined) return [];
  return (Array.isArray(header) ? header : [header]).flatMap((v) => v.split(","));
}

/**
 * Parses every `Prefer` header: comma lists, the first occurrence of a
 * preference wins, unknown ones are ignored, as PostgREST does; the ones in
 * {@link REFUSED} get 400 PGRST127.
 */
export function parsePrefer(header: HeaderValue): Preferences {
  const prefs: { -readonly [K in keyof Preferences]: Preferences[K] } = {};
  for (const raw of values(header)) {
    const [name = "", value = ""] = raw.split("=", 2).map((part) => part.trim());
    const item = `${name}=${value}`;
    if (REFUSED.test(item)) throw notImplemented(`Prefer: ${item} is not supported by the local gateway`);
    if (!SUPPORTED.has(item)) continue;
    // SUPPORTED holds only these two names, with values of their types.
    if (name === "return") prefs.return ??= value as Preferences["return"];
    else prefs.resolution ??= value as Preferences["resolution"];
  }
  return prefs;
}

export type MediaKind = "json" | "object";

const MEDIA: Record<string, MediaKind> = {
  "*/*": "json",
  "application/*": "json",
  "application/json": "json",
  "application/vnd.pgrst.object+json": "object",
  "application/vnd.pgrst.object": "object",
};

/**
 * Picks the response media type: the first type in `Accept` that this gateway
 * renders (JSON, or PostgREST's singular object). None → 406 PGRST107, so CSV,
 * `nulls=stripped` arrays or plans are refused rather than answered as JSON.
 */
export function negotiateMedia(header: HeaderValue): MediaKind {
  const offered = values(header)
    .map((entry) => entry.split(";")[0]?.trim().toLowerCase() ?? "")
    .filter((type) => type !== "");
  if (offered.length === 0) return "json";
  for (const type of offered) {
    const kind = MEDIA[type];
    if (kind) return kind;
  }
  throw new ApiError(406, "PGRST107", `None of these media types are available: ${offered.join(", ")}`);
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
