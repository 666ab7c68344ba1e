/**
 * Supabase-style HS256 keys and the request authentication PostgREST does
 * behind Supabase's API gateway.
 */
import { errors, type JWTPayload, jwtVerify, SignJWT } from "jose";
import { ApiError, GatewayError } from "./errors.js";

export interface MintOptions {
  /** Seconds until `exp`; negative mints an already expired token. Default 3600. */
  readonly expiresIn?: number;
}

export interface SupabaseKeys {
  readonly jwtSecret: string;
  /** Long-lived JWT with `role: "anon"`, like a project's anon key. */
  readonly anonKey: string;
  /** Long-lived JWT with `role: "service_role"` (bypasses RLS). */
  readonly serviceRoleKey: string;
  /**
   * A user's access token as Supabase Auth issues it: `sub`, `role` and
   * `aud` = `authenticated`, plus `extraClaims` (which may override them).
   */
  mintUserToken(
    sub: string,
    extraClaims?: Readonly<Record<string, unknown>>,
    options?: MintOptions,
  ): Promise<string>;
  /** Any claims, signed with the project secret. */
  mintToken(claims: Readonly<Record<string, unknown>>, options?: MintOptions): Promise<string>;
}

const TEN_YEARS = 10 * 365 * 24 * 3600;

function secretKey(secret: string): Uint8Array {
  return new TextEncoder().encode(secret);
}

/** Mints the project keys. The secret must be at least 32 characters, as PostgREST requires. */
export async function createSupabaseKeys(jwtSecret: string): Promise<SupabaseKeys> {
  if (jwtSecret.length < 32) throw new Error("[testkit] the JWT secret must be at least 32 characters");
  const key = secretKey(jwtSecret);
  const mintToken = async (claims: Readonly<Record<string, unknown>>, options: MintOptions = {}) => {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ iat: now, exp: now + (options.expiresIn ?? 3600), ...claims })
      .setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .sign(key);
  };
  return {
    jwtSecret,
    anonKey: await mintToken({ iss: "supabase", ref: "local", role: "anon" }, { expiresIn: TEN_YEARS }),
    serviceRoleKey: await mintToken(
      { iss: "supabase", ref: "local", role: "service_role" },
      { expiresIn: TEN_YEARS },
    ),
    mintToken,
    mintUserToken: (sub, extraClaims = {}, options) =>
      mintToken(
        { iss: "supabase", sub, role: "authenticated", aud: "authenticated", ...extraClaims },
        options,
      ),
  };
}

export interface AuthResult {
  /** The database role the request runs as. */
  readonly role: string;
  /** `request.jwt.claims`: the token's claims with `role` always set. */
  readonly claims: Readonly<Record<string, unknown>>;
}

function jwtError(code: "PGRST301" | "PGRST303", message: string): ApiError {
  const header = `Bearer error="invalid_token", error_description=${JSON.stringify(message)}`;
  return new ApiError(401, code, message, null, null, { "WWW-Authenticate": header });
}

/** jose's failure → PostgREST's PGRST301 (undecodable) or PGRST303 (claims) with its wording. */
function translate(error: unknown, token: string): ApiError {
  const parts = token.split(".").length;
  if (parts !== 3) return jwtError("PGRST301", `Expected 3 parts in JWT; got ${parts}`);
  if (error instanceof errors.JWTExpired) return jwtError("PGRST303", "JWT expired");
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.reason === "invalid")
      return jwtError("PGRST303", `The JWT '${error.claim}' claim must be a number`);
    if (error.claim === "nbf") return jwtError("PGRST303", "JWT not yet valid");
    if (error.claim === "iat") return jwtError("PGRST303", "JWT issued at future");
    if (error.claim === "aud") return jwtError("PGRST303", "JWT not in audience");
    return jwtError("PGRST303", "Parsing claims failed");
  }
  if (error instanceof errors.JOSEAlgNotAllowed || error instanceof errors.JOSENotSupported) {
    return jwtError("PGRST301", "Wrong or unsupported encoding algorithm");
  }
  return jwtError("PGRST301", "JWT cryptographic operation failed");
}

async function verify(token: string, key: Uint8Array): Promise<JWTPayload> {
  // PostgREST allows 30 s of clock skew on exp/nbf/iat.
  const { payload } = await jwtVerify(token, key, { algorithms: ["HS256"], clockTolerance: 30 });
  return payload;
}

/**
 * Authenticates like Supabase: the API gateway requires an `apikey` (header
 * or query parameter) signed with the project secret; then PostgREST takes
 * `Authorization: Bearer <jwt>` — or, without that header, the apikey itself —
 * verifies HS256 with `exp`/`nbf`/`iat`, and runs as the `role` claim
 * (`anon` when absent). A non-Bearer Authorization means anonymous.
 */
export async function authenticate(
  secret: string,
  apikey: string | undefined,
  authorization: string | undefined,
): Promise<AuthResult> {
  const key = secretKey(secret);
  if (apikey === undefined || apikey === "") {
    throw new GatewayError(
      "No API key found in request",
      "No `apikey` request header or url param was found.",
    );
  }
  let apikeyClaims: JWTPayload;
  try {
    apikeyClaims = await verify(apikey, key);
  } catch {
    throw new GatewayError("Invalid API key", "Double check your Supabase `anon` or `service_role` API key.");
  }
  let claims: JWTPayload = apikeyClaims;
  if (authorization !== undefined) {
    const bearer = /^bearer\s*(.*)$/is.exec(authorization.trim());
    if (!bearer) claims = {};
    else {
      const token = (bearer[1] ?? "").trim();
      if (token === "") throw jwtError("PGRST301", "Empty JWT is sent in Authorization header");
      try {
        claims = await verify(token, key);
      } catch (error) {
        throw translate(error, token);
      }
    }
  }
  const role = typeof claims.role === "string" && claims.role !== "" ? claims.role : "anon";
  return { role, claims: { ...claims, role } };
}
