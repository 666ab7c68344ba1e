/**
 * User management as Supabase Auth's admin API does it (supabase/auth `internal/api/admin.go`):
 * `POST /admin/users`, `GET|PUT|DELETE /admin/users/<id>`, `GET /admin/users`. The caller has
 * already been checked to hold an admin role (service_role).
 */
import { randomBytes } from "node:crypto";
import type { Sql } from "postgres";
import { AuthFailure, type AuthReply, json, objectField, parseJsonBody, stringField } from "./auth-errors.js";
import {
  AUDIENCE,
  checkPasswordStrength,
  type Db,
  findUserById,
  hashPassword,
  logoutUser,
  mergeMetadata,
  parseBanDuration,
  USER_COLUMNS,
  type UserRow,
  userJson,
  validateEmail,
} from "./auth-users.js";

export interface NewUser {
  readonly email: string;
  /** Default: a random 64-character password (the user cannot sign in until one is set). */
  readonly password?: string;
  /** A bcrypt hash to store instead of hashing `password`. */
  readonly passwordHash?: string;
  readonly id?: string;
  readonly role?: string;
  readonly emailConfirm?: boolean;
  readonly userMetadata?: Readonly<Record<string, unknown>>;
  readonly appMetadata?: Readonly<Record<string, unknown>>;
  /** Milliseconds from now; 0 or absent: not banned. */
  readonly banDurationMs?: number;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const NIL_UUID = "00000000-0000-0000-0000-000000000000";
const BCRYPT_HASH = /^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$/;

export function isUuid(value: string): boolean {
  return UUID.test(value);
}

function banSql(ms: number | undefined): string | null {
  return ms === undefined || ms === 0 ? null : new Date(Date.now() + ms).toISOString();
}

/** `adminUserCreate`: the checks, defaults and metadata GoTrue applies, in its order. */
export async function createUser(db: Sql, input: NewUser): Promise<UserRow> {
  const email = validateEmail(input.email);
  const [taken] = await db`
    select 1 from auth.users where lower(email) = ${email} and aud = ${AUDIENCE} and is_sso_user = false`;
  if (taken) {
    throw new AuthFailure(422, "email_exists", "A user with this email address has already been registered");
  }
  if (input.password !== undefined && input.passwordHash !== undefined) {
    throw new AuthFailure(400, "validation_failed", "Only a password or a password hash should be provided");
  }
  let encrypted: string;
  if (input.passwordHash !== undefined) {
    if (!BCRYPT_HASH.test(input.passwordHash)) {
      throw new AuthFailure(400, "validation_failed", "Invalid password hash format");
    }
    encrypted = input.passwordHash;
  } else {
    const password =
      input.password === undefined || input.password === ""
        ? randomBytes(48).toString("base64url")
        : input.password;
    encrypted = await hashPassword(password);
  }
  if (input.id !== undefined && !isUuid(input.id)) {
    throw new AuthFailure(400, "validation_failed", "ID must conform to the uuid v4 format");
  }
  if (input.id === NIL_UUID) throw new AuthFailure(400, "validation_failed", "ID cannot be a nil uuid");
  const appMetadata = mergeMetadata({ provider: "email", providers: ["email"] }, input.appMetadata ?? {});
  const userMetadata = input.emailConfirm
    ? mergeMetadata(input.userMetadata ?? {}, { email_verified: true })
    : { ...(input.userMetadata ?? {}) };
  try {
    const [row] = await db.unsafe<UserRow[]>(
      `insert into auth.users (id, aud, role, email, encrypted_password, email_confirmed_at,
         raw_app_meta_data, raw_user_meta_data, created_at, updated_at, banned_until, is_anonymous)
       values (coalesce($1::uuid, gen_random_uuid()), $2, $3, $4, $5, case when $6::boolean then now() end,
         $7::jsonb, $8::jsonb, now(), now(), $9::timestamptz, false)
       returning ${USER_COLUMNS}`,
      [
        input.id ?? null,
        AUDIENCE,
        input.role ?? AUDIENCE,
        email,
        encrypted,
        input.emailConfirm === true,
        appMetadata,
        userMetadata,
        banSql(input.banDurationMs),
      ] as never[],
    );
    if (!row) throw new Error("no user row");
    return row;
  } catch (error) {
    if ((error as { code?: unknown }).code === "23505") {
      throw new AuthFailure(
        422,
        "email_exists",
        "A user with this email address has already been registered",
      );
    }
    throw error;
  }
}

function booleanField(body: Record<string, unknown>, name: string): boolean {
  const value = body[name];
  if (value === undefined || value === null) return false;
  if (typeof value !== "boolean") {
    throw new AuthFailure(
      400,
      "bad_json",
      `Could not parse request body as JSON: json: cannot unmarshal ${typeof value} into Go struct field .${name} of type bool`,
    );
  }
  return value;
}

/** `AdminUserParams` from a request body; phone users are not supported here. */
function adminParams(body: Record<string, unknown>) {
  const phone = stringField(body, "phone") ?? "";
  if (phone !== "") {
    throw new AuthFailure(422, "phone_provider_disabled", "Phone logins are disabled");
  }
  const banDuration = stringField(body, "ban_duration") ?? "";
  return {
    id: stringField(body, "id"),
    role: stringField(body, "role"),
    email: stringField(body, "email") ?? "",
    password: stringField(body, "password"),
    passwordHash: stringField(body, "password_hash"),
    emailConfirm: booleanField(body, "email_confirm"),
    userMetadata: objectField(body, "user_metadata"),
    appMetadata: objectField(body, "app_metadata"),
    banDurationMs: banDuration === "" ? undefined : parseBanDuration(banDuration),
  };
}

/** `adminUserUpdate`: each given field changes; a new password signs the user out everywhere. */
async function updateUser(db: Sql, user: UserRow, body: Record<string, unknown>): Promise<UserRow> {
  const params = adminParams(body);
  const email = params.email === "" ? undefined : validateEmail(params.email);
  let encrypted: string | undefined;
  if (params.password !== undefined) {
    checkPasswordStrength(params.password);
    encrypted = await hashPassword(params.password);
  }
  return db.begin(async (tx) => {
    let userMetadata = user.raw_user_meta_data ?? {};
    if (params.emailConfirm) userMetadata = mergeMetadata(userMetadata, { email_verified: true });
    if (params.userMetadata) userMetadata = mergeMetadata(userMetadata, params.userMetadata);
    const appMetadata = params.appMetadata
      ? mergeMetadata(user.raw_app_meta_data, params.appMetadata)
      : (user.raw_app_meta_data ?? {});
    const [row] = await tx.unsafe<UserRow[]>(
      `update auth.users set
         role = coalesce($2, role),
         email = coalesce($3, email),
         encrypted_password = coalesce($4, encrypted_password),
         email_confirmed_at = case when $5::boolean then now() else email_confirmed_at end,
         raw_user_meta_data = $6::jsonb,
         raw_app_meta_data = $7::jsonb,
         banned_until = case when $8::boolean then $9::timestamptz else banned_until end,
         updated_at = now()
       where id = $1
       returning ${USER_COLUMNS}`,
      [
        user.id,
        params.role || null,
        email ?? null,
        encrypted ?? null,
        params.emailConfirm,
        userMetadata,
        appMetadata,
        params.banDurationMs !== undefined,
        banSql(params.banDurationMs),
      ] as never[],
    );
    if (encrypted !== undefined) await logoutUser(tx, user.id);
    if (!row) throw new AuthFailure(404, "user_not_found", "User not found");
    return row;
  });
}

/** `adminUserDelete`: removes the row (sessions and tokens cascade), or soft-deletes it. */
async function deleteUser(db: Sql, user: UserRow, body: string | undefined): Promise<void> {
  const soft =
    body !== undefined && body.trim() !== "" && booleanField(parseJsonBody(body), "should_soft_delete");
  if (!soft) {
    await db`delete from auth.users where id = ${user.id}`;
    return;
  }
  if (user.deleted_at !== null) return;
  await db.begin(async (tx) => {
    await tx`
      update auth.users set
        email = case when email is null or email = '' then email
                     else encode(sha256(convert_to(id::text || email, 'UTF8')), 'hex') end,
        phone = null, encrypted_password = null, raw_user_meta_data = '{}', raw_app_meta_data = '{}',
        deleted_at = now(), updated_at = now()
      where id = ${user.id}`;
    await logoutUser(tx, user.id);
  });
}

async function listUsers(db: Db, query: URLSearchParams): Promise<AuthReply> {
  const page = Math.max(1, Number.parseInt(query.get("page") ?? "1", 10) || 1);
  const perPage = Math.min(1000, Math.max(1, Number.parseInt(query.get("per_page") ?? "50", 10) || 50));
  const rows = await db.unsafe<UserRow[]>(
    `select ${USER_COLUMNS} from auth.users where aud = $1 order by created_at desc, id limit $2 offset $3`,
    [AUDIENCE, perPage, (page - 1) * perPage] as never[],
  );
  const [count] = await db<
    { total: string }[]
  >`select count(*) as total from auth.users where aud = ${AUDIENCE}`;
  return json(200, { users: rows.map(userJson), aud: AUDIENCE }, { "X-Total-Count": count?.total ?? "0" });
}

/**
 * Answers `/admin/users[/<id>]` (`segments` after `/admin/users`). Returns undefined for a path
 * or method the admin API does not have here.
 */
export async function adminUsersRoute(
  db: Sql,
  method: string,
  segments: readonly string[],
  query: URLSearchParams,
  body: string | undefined,
): Promise<AuthReply | undefined> {
  if (segments.length === 0) {
    if (method === "GET") return listUsers(db, query);
    if (method !== "POST") return undefined;
    const params = adminParams(parseJsonBody(body));
    const { email, password, passwordHash, id, role, userMetadata, appMetadata, banDurationMs } = params;
    if (email === "") {
      throw new AuthFailure(
        400,
        "validation_failed",
        "Cannot create a user without either an email or phone",
      );
    }
    const user = await createUser(db, {
      email,
      emailConfirm: params.emailConfirm,
      ...(password !== undefined && { password }),
      ...(passwordHash !== undefined && { passwordHash }),
      ...(id !== undefined && { id }),
      ...(role !== undefined && role !== "" && { role }),
      ...(userMetadata !== undefined && { userMetadata }),
      ...(appMetadata !== undefined && { appMetadata }),
      ...(banDurationMs !== undefined && { banDurationMs }),
    });
    return json(200, userJson(user));
  }
  const [id = "", ...rest] = segments;
  if (rest.length > 0 || !["GET", "PUT", "DELETE"].includes(method)) return undefined;
  if (!isUuid(id)) throw new AuthFailure(404, "validation_failed", "user_id must be an UUID");
  const user = await findUserById(db, id);
  if (!user) throw new AuthFailure(404, "user_not_found", "User not found");
  if (method === "GET") return json(200, userJson(user));
  if (method === "PUT") return json(200, userJson(await updateUser(db, user, parseJsonBody(body))));
  await deleteUser(db, user, body);
  return json(200, {});
}
