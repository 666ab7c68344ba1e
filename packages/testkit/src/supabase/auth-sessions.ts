/**
 * Sessions and tokens as Supabase Auth issues them (supabase/auth `internal/api/token.go`,
 * `token_refresh.go`, `internal/tokens/service.go`, `internal/models/refresh_token.go`,
 * `sessions.go`), with v1 refresh tokens: 12 random base32 characters, single use, each child
 * pointing at its parent.
 *
 * Refresh: the token's row and its session are locked (`FOR UPDATE SKIP LOCKED`; a locked row
 * means a concurrent refresh, retried after 10–30 ms for up to 5 s, then 409 `conflict`). A valid
 * token is revoked and gets a child. A revoked token that is the parent of the session's active
 * token (a client that lost the answer, or a refresh racing another) gets that active token back.
 * Another revoked token is accepted (and gets a child) while it was revoked less than the reuse
 * interval ago; after that it is a theft: every token of the session is revoked and the answer is
 * `refresh_token_already_used`. Sign-out deletes sessions; their tokens go with them.
 */
import { randomBytes, randomInt } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type { Sql } from "postgres";
import { AuthFailure, invalidCredentials, stringField } from "./auth-errors.js";
import {
  type Db,
  findUserByEmail,
  findUserById,
  passwordMatches,
  type UserRow,
  userJson,
} from "./auth-users.js";
import { type SigningKey, signWithKey } from "./signing-key.js";

export interface TokenIssuer {
  readonly pool: Sql;
  readonly signingKey: SigningKey;
  /** `<project url>/auth/v1`, the `iss` claim. */
  issuer(): string;
  /** `GOTRUE_JWT_EXP`. */
  readonly jwtExpirySeconds: number;
  /** `GOTRUE_SECURITY_REFRESH_TOKEN_REUSE_INTERVAL`. */
  readonly reuseIntervalSeconds: number;
}

export interface SessionRow {
  readonly id: string;
  readonly user_id: string;
  readonly created_at: Date;
  readonly not_after: Date | null;
  readonly aal: string | null;
}

const SESSION_COLUMNS = "id, user_id, created_at, not_after, aal::text as aal";
const RETRY_FOR_MS = 5_000;
const BASE32 = "abcdefghijklmnopqrstuvwxyz234567";

/** GoTrue's `SecureAlphanumeric(12)`: lower-case base32. */
function newRefreshToken(): string {
  return [...randomBytes(12)].map((byte) => BASE32[byte & 31]).join("");
}

export async function findSession(db: Db, id: string): Promise<SessionRow | undefined> {
  const [row] = await db.unsafe<SessionRow[]>(`select ${SESSION_COLUMNS} from auth.sessions where id = $1`, [
    id,
  ]);
  return row;
}

/** The access token's claims, as `GenerateAccessToken` sets them (no custom access token hook). */
async function accessToken(issuer: TokenIssuer, user: UserRow, session: SessionRow) {
  const iat = Math.floor(Date.now() / 1000);
  const exp = iat + issuer.jwtExpirySeconds;
  const claims = {
    iss: issuer.issuer(),
    sub: user.id,
    aud: user.aud ?? "",
    exp,
    iat,
    email: user.email ?? "",
    phone: user.phone ?? "",
    app_metadata: user.raw_app_meta_data ?? {},
    user_metadata: user.raw_user_meta_data ?? {},
    role: user.role ?? "",
    aal: session.aal ?? "aal1",
    // The session's only authentication method here: the password sign-in that created it.
    amr: [{ method: "password", timestamp: Math.floor(session.created_at.getTime() / 1000) }],
    session_id: session.id,
    is_anonymous: user.is_anonymous,
  };
  return { token: await signWithKey(claims, issuer.signingKey), expiresAt: exp };
}

/** `AccessTokenResponse`. */
async function sessionResponse(
  issuer: TokenIssuer,
  user: UserRow,
  session: SessionRow,
  refreshToken: string,
) {
  const { token, expiresAt } = await accessToken(issuer, user, session);
  return {
    access_token: token,
    token_type: "bearer",
    // The configured lifetime, as Auth answers it (`ExpiresIn: config.JWT.Exp`): counted from now,
    // a response finished in the next second said one less.
    expires_in: issuer.jwtExpirySeconds,
    expires_at: expiresAt,
    refresh_token: refreshToken,
    user: userJson(user),
  };
}

/** `POST /token?grant_type=password`. */
export async function passwordGrant(issuer: TokenIssuer, body: Record<string, unknown>) {
  const email = stringField(body, "email") ?? "";
  const phone = stringField(body, "phone") ?? "";
  const password = stringField(body, "password") ?? "";
  if (email !== "" && phone !== "") {
    throw new AuthFailure(
      400,
      "validation_failed",
      "Only an email address or phone number should be provided on login.",
    );
  }
  if (phone !== "") throw new AuthFailure(422, "phone_provider_disabled", "Phone logins are disabled");
  if (email === "") throw new AuthFailure(400, "validation_failed", "missing email or phone");
  const found = await findUserByEmail(issuer.pool, email);
  if (!found || found.encrypted_password === null || found.encrypted_password === "") {
    throw invalidCredentials();
  }
  // GoTrue checks the ban before the password: a banned user learns of the ban either way.
  if (found.banned) throw new AuthFailure(400, "user_banned", "User is banned");
  if (!(await passwordMatches(password, found.encrypted_password))) throw invalidCredentials();
  if (found.email_confirmed_at === null) {
    throw new AuthFailure(400, "email_not_confirmed", "Email not confirmed");
  }
  const { user, session, token } = await issuer.pool.begin(async (tx) => {
    const [session] = await tx.unsafe<SessionRow[]>(
      `insert into auth.sessions (id, user_id, created_at, updated_at, aal)
       values (gen_random_uuid(), $1, now(), now(), 'aal1') returning ${SESSION_COLUMNS}`,
      [found.id],
    );
    if (!session) throw new Error("no session row");
    const token = newRefreshToken();
    await tx`
      insert into auth.refresh_tokens (token, user_id, parent, session_id, revoked, created_at, updated_at)
      values (${token}, ${found.id}, null, ${session.id}, false, now(), now())`;
    await tx`update auth.users set last_sign_in_at = now(), updated_at = now() where id = ${found.id}`;
    return { user: await findUserById(tx, found.id), session, token };
  });
  if (!user) throw invalidCredentials();
  return sessionResponse(issuer, user, session, token);
}

const refreshTokenNotFound = () =>
  new AuthFailure(400, "refresh_token_not_found", "Invalid Refresh Token: Refresh Token Not Found");

interface LockedToken {
  readonly id: string;
  readonly token: string;
  readonly user_id: string;
  readonly session_id: string;
  readonly revoked: boolean;
  /** Seconds since `updated_at`: for a revoked token, since its revocation. */
  readonly age: number;
}

type RefreshOutcome =
  | { readonly kind: "retry" }
  | { readonly kind: "failed"; readonly failure: AuthFailure }
  | { readonly kind: "issued"; readonly user: UserRow; readonly session: SessionRow; readonly token: string };

/** The locked part of a refresh, in one transaction. */
async function rotate(issuer: TokenIssuer, refreshToken: string): Promise<RefreshOutcome> {
  return issuer.pool.begin(async (tx): Promise<RefreshOutcome> => {
    const [locked] = await tx<LockedToken[]>`
      select id, token, user_id, session_id, coalesce(revoked, false) as revoked,
        extract(epoch from clock_timestamp() - updated_at)::float8 as age
      from auth.refresh_tokens where token = ${refreshToken} for update skip locked`;
    if (!locked) return { kind: "retry" };
    const [session] = await tx.unsafe<SessionRow[]>(
      `select ${SESSION_COLUMNS} from auth.sessions where id = $1 for update skip locked`,
      [locked.session_id],
    );
    if (!session) return { kind: "retry" };
    let issued: string | undefined;
    if (locked.revoked) {
      const [active] = await tx<{ token: string; parent: string | null }[]>`
        select token, parent from auth.refresh_tokens
        where session_id = ${session.id} and revoked is false order by id desc limit 1`;
      if (active && active.parent === locked.token) issued = active.token;
      else if (locked.age > issuer.reuseIntervalSeconds) {
        await tx`
          update auth.refresh_tokens set revoked = true, updated_at = now()
          where session_id = ${session.id} and revoked = false`;
        const failure = new AuthFailure(
          400,
          "refresh_token_already_used",
          "Invalid Refresh Token: Already Used",
        );
        return { kind: "failed", failure };
      }
    }
    if (issued === undefined) {
      issued = newRefreshToken();
      await tx`update auth.refresh_tokens set revoked = true, updated_at = now() where id = ${locked.id}`;
      await tx`
        insert into auth.refresh_tokens (token, user_id, parent, session_id, revoked, created_at, updated_at)
        values (${issued}, ${locked.user_id}, ${locked.token}, ${session.id}, false, now(), now())`;
      await tx`update auth.users set last_sign_in_at = now(), updated_at = now() where id = ${locked.user_id}`;
    }
    await tx`
      update auth.sessions set refreshed_at = now() at time zone 'utc', updated_at = now()
      where id = ${session.id}`;
    const user = await findUserById(tx, locked.user_id);
    if (!user) return { kind: "failed", failure: refreshTokenNotFound() };
    return { kind: "issued", user, session, token: issued };
  });
}

/** `POST /token?grant_type=refresh_token`. */
export async function refreshTokenGrant(issuer: TokenIssuer, body: Record<string, unknown>) {
  const refreshToken = stringField(body, "refresh_token") ?? "";
  // Only v1 tokens are issued here; a longer (v2) token cannot be one of ours.
  if (!/^[a-z0-9]{12}$/.test(refreshToken)) {
    throw new AuthFailure(400, "validation_failed", "Refresh token is not valid");
  }
  const started = Date.now();
  while (Date.now() - started < RETRY_FOR_MS) {
    const [found] = await issuer.pool<
      { user_id: string; session_id: string | null; expired: boolean | null }[]
    >`
      select rt.user_id, s.id as session_id, s.not_after < clock_timestamp() as expired
      from auth.refresh_tokens rt left join auth.sessions s on s.id = rt.session_id
      where rt.token = ${refreshToken}`;
    const user = found && (await findUserById(issuer.pool, found.user_id));
    if (!found || !user) throw refreshTokenNotFound();
    if (user.banned) throw new AuthFailure(400, "user_banned", "Invalid Refresh Token: User Banned");
    if (found.session_id === null) {
      await issuer.pool`delete from auth.refresh_tokens where token = ${refreshToken}`;
      throw new AuthFailure(400, "session_not_found", "Invalid Refresh Token: No Valid Session Found");
    }
    if (found.expired)
      throw new AuthFailure(400, "session_expired", "Invalid Refresh Token: Session Expired");
    const outcome = await rotate(issuer, refreshToken);
    if (outcome.kind === "failed") throw outcome.failure;
    if (outcome.kind === "issued") {
      return sessionResponse(issuer, outcome.user, outcome.session, outcome.token);
    }
    await sleep(randomInt(10, 30));
  }
  throw new AuthFailure(
    409,
    "conflict",
    "Too many concurrent token refresh requests on the same session or refresh token",
  );
}

export type LogoutScope = "global" | "local" | "others";

/** `POST /logout`: deletes the session, the user's other sessions, or all of them. */
export async function logout(db: Db, userId: string, sessionId: string | undefined, scope: LogoutScope) {
  if (sessionId !== undefined && scope === "local") {
    await db`delete from auth.sessions where id = ${sessionId}`;
  } else if (sessionId !== undefined && scope === "others") {
    await db`delete from auth.sessions where id <> ${sessionId} and user_id = ${userId}`;
  } else {
    await db`delete from auth.sessions where user_id = ${userId}`;
  }
}
