/**
 * The Supabase Auth (GoTrue) endpoints supabase-js uses, under `<url>/auth/v1`, behind the same
 * API-gateway rule as the REST API (an `apikey` that is one of the project's keys; the JWKS is
 * public): password and refresh-token grants, `/user`, `/logout`, the JWKS and the admin users
 * API. Routing, authentication and the admin check follow supabase/auth `internal/api/api.go`,
 * `auth.go` and `middleware.go`; a path it does not route gets chi's plain-text 404.
 */
import { errors } from "jose";
import type { Sql } from "postgres";
import { adminUsersRoute, createUser, isUuid, type NewUser } from "./auth-admin.js";
import {
  API_VERSION_HEADER,
  AuthFailure,
  type AuthReply,
  apiVersionOf,
  json,
  parseJsonBody,
  renderFailure,
  unexpectedFailure,
} from "./auth-errors.js";
import {
  findSession,
  type LogoutScope,
  logout,
  passwordGrant,
  refreshTokenGrant,
  type SessionRow,
  type TokenIssuer,
} from "./auth-sessions.js";
import { findUserById, type UserRow, userJson } from "./auth-users.js";
import { ApiError, describeInternal } from "./errors.js";
import { KeySelectionError, type ProjectKeys, verifyApiKey, verifyProjectJwt } from "./jwt.js";
import { jwksOf, type SigningKey } from "./signing-key.js";

export interface AuthRequest {
  readonly method: string;
  /** The path after `/auth/v1`, e.g. `/token`. */
  readonly path: string;
  readonly query: URLSearchParams;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: string | undefined;
}

export interface AuthServerOptions {
  /** The `supabase_auth_admin` pool. */
  readonly pool: Sql;
  readonly jwtSecret: string;
  readonly signingKey: SigningKey;
  issuer(): string;
  readonly jwtExpirySeconds: number;
  readonly reuseIntervalSeconds: number;
  readonly log: (line: string) => void;
}

export interface AuthServer {
  /** Answers one request under `/auth/v1`; never throws. */
  handle(request: AuthRequest): Promise<AuthReply>;
  /** Creates a user as the admin API does; throws {@link AuthFailure} as it would answer. */
  createUser(user: NewUser): Promise<UserRow>;
}

const ADMIN_ROLES = new Set(["service_role", "supabase_admin"]);
const NIL_UUID = "00000000-0000-0000-0000-000000000000";
const EXPOSED_HEADERS = `X-Total-Count, Link, ${API_VERSION_HEADER}`;
const JWKS_PATH = "/.well-known/jwks.json";

function header(request: AuthRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** chi's default answers for a path or method nothing routes. */
const notFound = (): AuthReply => ({
  status: 404,
  headers: { "Content-Type": "text/plain; charset=utf-8", "X-Content-Type-Options": "nosniff" },
  body: "404 page not found\n",
});
const methodNotAllowed = (): AuthReply => ({ status: 405, headers: {} });

/** golang-jwt's wording for why a token was refused, as GoTrue quotes it. */
function jwtProblem(error: unknown, token: string): string {
  if (token.split(".").length !== 3)
    return "token is malformed: token contains an invalid number of segments";
  if (error instanceof KeySelectionError && error.reason === "algorithm") {
    return `token signature is invalid: signing method ${String(error.alg)} is invalid`;
  }
  if (error instanceof KeySelectionError) {
    const kid = String(error.kid ?? "<nil>");
    return `token is unverifiable: error while executing keyfunc: unrecognized JWT kid ${kid} for algorithm ${String(error.alg)}`;
  }
  if (error instanceof errors.JWTExpired) return "token has invalid claims: token is expired";
  if (error instanceof errors.JWTClaimValidationFailed)
    return "token has invalid claims: token is not valid yet";
  if (error instanceof errors.JWSSignatureVerificationFailed) {
    return "token signature is invalid: signature is invalid";
  }
  return "token is malformed: could not JSON decode header";
}

function badJwt(error: unknown, token: string): AuthFailure {
  const problem = jwtProblem(error, token);
  return new AuthFailure(403, "bad_jwt", `invalid JWT: unable to parse or verify signature, ${problem}`);
}

interface Caller {
  readonly claims: Readonly<Record<string, unknown>>;
  readonly user?: UserRow;
  readonly session?: SessionRow;
}

export function createAuthServer(options: AuthServerOptions): AuthServer {
  const { pool } = options;
  const keys: ProjectKeys = { jwtSecret: options.jwtSecret, signingKey: options.signingKey };
  const issuer: TokenIssuer = {
    pool,
    signingKey: options.signingKey,
    issuer: options.issuer,
    jwtExpirySeconds: options.jwtExpirySeconds,
    reuseIntervalSeconds: options.reuseIntervalSeconds,
  };

  /** `extractBearerToken` + `parseJWTClaims`: no leeway, keys chosen by the header. */
  async function verifiedClaims(request: AuthRequest): Promise<Readonly<Record<string, unknown>>> {
    const bearer = /^(?:B|b)earer (\S+$)/.exec(header(request, "authorization") ?? "");
    if (!bearer?.[1]) {
      throw new AuthFailure(401, "no_authorization", "This endpoint requires a valid Bearer token");
    }
    try {
      return await verifyProjectJwt(bearer[1], keys, 0);
    } catch (error) {
      throw badJwt(error, bearer[1]);
    }
  }

  /** `maybeLoadUserOrSession`: the `sub` must be a user; a `session_id`, if any, a live session. */
  async function loadUserAndSession(claims: Readonly<Record<string, unknown>>): Promise<Caller> {
    const sub = typeof claims.sub === "string" ? claims.sub : "";
    if (sub === "") throw new AuthFailure(403, "bad_jwt", "invalid claim: missing sub claim");
    if (!isUuid(sub)) throw new AuthFailure(400, "bad_jwt", "invalid claim: sub claim must be a UUID");
    const user = await findUserById(pool, sub);
    if (!user) throw new AuthFailure(403, "user_not_found", "User from sub claim in JWT does not exist");
    const sessionId = typeof claims.session_id === "string" ? claims.session_id : "";
    if (sessionId === "" || sessionId === NIL_UUID) return { claims, user };
    if (!isUuid(sessionId)) {
      throw new AuthFailure(403, "bad_jwt", "invalid claim: session_id claim must be a UUID");
    }
    const session = await findSession(pool, sessionId);
    if (!session) {
      throw new AuthFailure(403, "session_not_found", "Session from session_id claim in JWT does not exist");
    }
    return { claims, user, session };
  }

  /** `requireAuthentication`. */
  async function requireUser(request: AuthRequest): Promise<Caller & { user: UserRow }> {
    const caller = await loadUserAndSession(await verifiedClaims(request));
    if (!caller.user) throw new AuthFailure(403, "bad_jwt", "invalid claim: missing sub claim");
    // Refuses a banned user who still holds an access token issued before the ban.
    if (caller.user.banned) throw new AuthFailure(403, "user_banned", "User is banned");
    return { ...caller, user: caller.user };
  }

  /** `requireAdminCredentials`: a token with an admin role; a user session must still be valid. */
  async function requireAdmin(request: AuthRequest): Promise<void> {
    const claims = await verifiedClaims(request);
    const sessionId = typeof claims.session_id === "string" ? claims.session_id : "";
    if (sessionId !== "" && sessionId !== NIL_UUID) {
      const { session } = await loadUserAndSession(claims);
      if (session?.not_after && session.not_after.getTime() < Date.now()) {
        throw new AuthFailure(403, "session_expired", "Session is no longer valid");
      }
    }
    if (typeof claims.role !== "string" || !ADMIN_ROLES.has(claims.role)) {
      throw new AuthFailure(403, "not_admin", "User not allowed");
    }
  }

  async function route(request: AuthRequest): Promise<AuthReply> {
    const { method, path } = request;
    if (path === "/token") {
      if (method !== "POST") return methodNotAllowed();
      const grant = request.query.get("grant_type") ?? "";
      if (grant === "password") return json(200, await passwordGrant(issuer, parseJsonBody(request.body)));
      if (grant === "refresh_token") {
        return json(200, await refreshTokenGrant(issuer, parseJsonBody(request.body)));
      }
      throw new AuthFailure(400, "invalid_credentials", "unsupported_grant_type");
    }
    if (path === "/user") {
      if (method !== "GET") return methodNotAllowed();
      return json(200, userJson((await requireUser(request)).user));
    }
    if (path === "/logout") {
      if (method !== "POST") return methodNotAllowed();
      const { user, session } = await requireUser(request);
      const scope = request.query.get("scope") ?? "";
      if (!["", "global", "local", "others"].includes(scope)) {
        throw new AuthFailure(400, "validation_failed", `Unsupported logout scope ${JSON.stringify(scope)}`);
      }
      await logout(pool, user.id, session?.id, (scope || "global") as LogoutScope);
      return { status: 204, headers: {} };
    }
    const admin = /^\/admin(\/.*)?$/.exec(path);
    if (admin) {
      await requireAdmin(request);
      const segments = (admin[1] ?? "").split("/").filter((segment) => segment !== "");
      if (segments[0] !== "users") return notFound();
      const reply = await adminUsersRoute(pool, method, segments.slice(1), request.query, request.body);
      return reply ?? notFound();
    }
    return notFound();
  }

  async function handle(request: AuthRequest): Promise<AuthReply> {
    const apiVersion = apiVersionOf(header(request, API_VERSION_HEADER.toLowerCase()));
    const cors: Record<string, string> =
      request.headers.origin === undefined
        ? {}
        : { "Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": EXPOSED_HEADERS };
    const withCors = (reply: AuthReply): AuthReply => ({ ...reply, headers: { ...cors, ...reply.headers } });
    try {
      if (request.path === JWKS_PATH) {
        if (request.method !== "GET") return withCors(methodNotAllowed());
        return withCors(json(200, jwksOf(options.signingKey), { "Cache-Control": "public, max-age=600" }));
      }
      // Supabase's API gateway, in front of Auth: the apikey must be one of the project's keys.
      const apikey = header(request, "apikey") ?? request.query.get("apikey") ?? "";
      if (apikey === "") {
        return withCors(
          json(401, {
            message: "No API key found in request",
            hint: "No `apikey` request header or url param was found.",
          }),
        );
      }
      await verifyApiKey(options.jwtSecret, apikey);
      return withCors(await route(request));
    } catch (error) {
      if (error instanceof AuthFailure) {
        return withCors(renderFailure(error, apiVersion));
      }
      if (error instanceof ApiError) return withCors(json(error.status, error.toJSON()));
      options.log(`[testkit] local-supabase auth: internal error ${describeInternal(error)}`);
      return withCors(renderFailure(unexpectedFailure(), apiVersion));
    }
  }

  return { handle, createUser: (user) => createUser(pool, user) };
}
