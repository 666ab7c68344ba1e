/**
 * Users in `auth.users` as Supabase Auth keeps them (supabase/auth `internal/models/user.go`,
 * `internal/api/admin.go`): bcrypt hashes (`$2a$`, cost 10), lower-cased emails,
 * `app_metadata` with the email provider, metadata updates that merge (a null value deletes the
 * key), bans as `banned_until`, and the user object the API answers with.
 */
import { compare, genSalt, hash } from "bcryptjs";
import type { Sql, TransactionSql } from "postgres";
import { AuthFailure } from "./auth-errors.js";

export type Db = Sql | TransactionSql;

export interface UserRow {
  readonly id: string;
  readonly aud: string | null;
  readonly role: string | null;
  readonly email: string | null;
  readonly encrypted_password: string | null;
  readonly email_confirmed_at: Date | null;
  readonly phone: string | null;
  readonly phone_confirmed_at: Date | null;
  readonly confirmed_at: Date | null;
  readonly last_sign_in_at: Date | null;
  readonly raw_app_meta_data: Record<string, unknown> | null;
  readonly raw_user_meta_data: Record<string, unknown> | null;
  readonly created_at: Date;
  readonly updated_at: Date | null;
  readonly banned_until: Date | null;
  readonly deleted_at: Date | null;
  readonly is_anonymous: boolean;
  /** `banned_until` is in the future (GoTrue's `IsBanned`). */
  readonly banned: boolean;
}

export const USER_COLUMNS = `id, aud, role, email, encrypted_password, email_confirmed_at, phone,
  phone_confirmed_at, confirmed_at, last_sign_in_at, raw_app_meta_data, raw_user_meta_data, created_at,
  updated_at, banned_until, deleted_at, is_anonymous, coalesce(banned_until > clock_timestamp(), false) as banned`;

/** GoTrue's defaults: `GOTRUE_JWT_AUD` and `GOTRUE_JWT_DEFAULT_GROUP_NAME`. */
export const AUDIENCE = "authenticated";
const PASSWORD_MIN_LENGTH = 6;
const BCRYPT_MAX_BYTES = 72;
/** What `ban_duration: "876000h"` (100 years) means: banned for good. */
export const FOREVER_MS = 876_000 * 3600 * 1000;

export async function findUserById(db: Db, id: string): Promise<UserRow | undefined> {
  const [row] = await db.unsafe<UserRow[]>(`select ${USER_COLUMNS} from auth.users where id = $1`, [id]);
  return row;
}

/** GoTrue's `FindUserByEmailAndAudience`: case-insensitive, not SSO. */
export async function findUserByEmail(db: Db, email: string): Promise<UserRow | undefined> {
  const [row] = await db.unsafe<UserRow[]>(
    `select ${USER_COLUMNS} from auth.users
     where lower(email) = $1 and aud = $2 and is_sso_user = false limit 1`,
    [email.toLowerCase(), AUDIENCE],
  );
  return row;
}

/** Go's RFC 3339 with nanoseconds: trailing zeros of the fraction dropped, `Z` for UTC. */
function rfc3339(date: Date): string {
  return date.toISOString().replace(/\.?0*Z$/, "Z");
}

/** The user object Supabase Auth answers with (field order and omissions as its JSON tags). */
export function userJson(user: UserRow): Record<string, unknown> {
  const time = (name: string, value: Date | null) => (value === null ? {} : { [name]: rfc3339(value) });
  return {
    id: user.id,
    aud: user.aud ?? "",
    role: user.role ?? "",
    email: user.email ?? "",
    ...time("email_confirmed_at", user.email_confirmed_at),
    phone: user.phone ?? "",
    ...time("phone_confirmed_at", user.phone_confirmed_at),
    ...time("confirmed_at", user.confirmed_at),
    ...time("last_sign_in_at", user.last_sign_in_at),
    app_metadata: user.raw_app_meta_data ?? {},
    user_metadata: user.raw_user_meta_data ?? {},
    identities: [],
    created_at: rfc3339(user.created_at),
    updated_at: rfc3339(user.updated_at ?? user.created_at),
    ...time("banned_until", user.banned_until),
    ...time("deleted_at", user.deleted_at),
    is_anonymous: user.is_anonymous,
  };
}

/** bcrypt as Go's `x/crypto/bcrypt` writes it: `$2a$`, cost 10; longer than 72 bytes is refused. */
export async function hashPassword(password: string): Promise<string> {
  if (Buffer.byteLength(password) > BCRYPT_MAX_BYTES) {
    throw new AuthFailure(400, "validation_failed", "bcrypt: password length exceeds 72 bytes");
  }
  const salt = (await genSalt(10)).replace(/^\$2b\$/, "$2a$");
  return hash(password, salt);
}

export async function passwordMatches(password: string, encrypted: string | null): Promise<boolean> {
  if (encrypted === null || !/^\$2[aby]\$\d\d\$/.test(encrypted)) return false;
  if (Buffer.byteLength(password) > BCRYPT_MAX_BYTES) return false;
  return compare(password, encrypted);
}

/** GoTrue's `checkPasswordStrength` with the default policy (at least 6 characters). */
export function checkPasswordStrength(password: string): void {
  if (Buffer.byteLength(password) > BCRYPT_MAX_BYTES) {
    throw new AuthFailure(400, "validation_failed", "Password cannot be longer than 72 characters");
  }
  if ([...password].length < PASSWORD_MIN_LENGTH) {
    throw new AuthFailure(
      422,
      "weak_password",
      `Password should be at least ${PASSWORD_MIN_LENGTH} characters.`,
      ["length"],
    );
  }
}

/** GoTrue's `validateEmail`: present, at most 255 characters, a plausible address; lower-cased. */
export function validateEmail(email: string): string {
  if (email === "") throw new AuthFailure(400, "validation_failed", "An email address is required");
  if (email.length > 255) throw new AuthFailure(400, "validation_failed", "An email address is too long");
  if (!/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email)) {
    throw new AuthFailure(400, "validation_failed", "Unable to validate email address: invalid format");
  }
  return email.toLowerCase();
}

/** GoTrue's metadata update: keys set, a null value deletes its key. */
export function mergeMetadata(
  current: Readonly<Record<string, unknown>> | null,
  updates: Readonly<Record<string, unknown>>,
): Record<string, unknown> {
  const merged: Record<string, unknown> = { ...(current ?? {}) };
  for (const [key, value] of Object.entries(updates)) {
    if (value === null) delete merged[key];
    else merged[key] = value;
  }
  return merged;
}

const DURATION_UNITS: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  μs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/**
 * A `ban_duration` in milliseconds: `"none"` is 0 (lifts the ban); otherwise Go's
 * `time.ParseDuration` (`"876000h"`, `"1h30m"`, `"-1s"`), else 400 as GoTrue answers.
 */
export function parseBanDuration(text: string): number {
  if (text === "none") return 0;
  const invalid = (detail: string) =>
    new AuthFailure(400, "validation_failed", `invalid format for ban duration: time: ${detail}`);
  const match = /^([-+]?)(.*)$/s.exec(text);
  const body = match?.[2] ?? "";
  if (body === "0") return 0;
  if (body === "") throw invalid(`invalid duration ${JSON.stringify(text)}`);
  let total = 0;
  const parts = body.matchAll(/(\d*\.?\d*)([^\d.]*)/gy);
  let consumed = 0;
  for (const [whole, number = "", unit = ""] of parts) {
    if (whole === "") break;
    consumed += whole.length;
    if (number === "" || number === ".") throw invalid(`invalid duration ${JSON.stringify(text)}`);
    if (unit === "") throw invalid(`missing unit in duration ${JSON.stringify(text)}`);
    const scale = DURATION_UNITS[unit];
    if (scale === undefined)
      throw invalid(`unknown unit ${JSON.stringify(unit)} in duration ${JSON.stringify(text)}`);
    total += Number(number) * scale;
  }
  if (consumed !== body.length) throw invalid(`invalid duration ${JSON.stringify(text)}`);
  return match?.[1] === "-" ? -total : total;
}

/** Deletes every session of the user (their refresh tokens go with them): GoTrue's `Logout`. */
export async function logoutUser(db: Db, userId: string): Promise<void> {
  await db`delete from auth.sessions where user_id = ${userId}`;
}
