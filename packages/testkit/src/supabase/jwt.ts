/**
 * Supabase-style keys and the request authentication PostgREST does behind
 * Supabase's API gateway. As on a project migrated to asymmetric signing keys,
 * the anon and service_role keys are HS256 JWTs signed with the legacy secret,
 * user access tokens are ES256 JWTs signed with the project's signing key, and
 * both verify.
 */
import { type CryptoKey, decodeProtectedHeader, errors, type JWTPayload, jwtVerify, SignJWT } from "jose";
import { ApiError, GatewayError } from "./errors.js";
import { type SigningKey, signWithKey } from "./signing-key.js";

export interface MintOptions {
  /** Seconds until `exp`; negative mints an already expired token. Default 3600. */
  readonly expiresIn?: number;
}

export interface SupabaseKeys {
  readonly jwtSecret: string;
  /** Long-lived HS256 JWT with `role: "anon"`, like a project's (legacy) anon key. */
  readonly anonKey: string;
  /** Long-lived HS256 JWT with `role: "service_role"` (bypasses RLS). */
  readonly serviceRoleKey: string;
  /**
   * A user's access token with the claims Supabase Auth issues (`iss`, `sub`, `aud` and `role`
   * `authenticated`, `aal1`, a password `amr`, `email` and `phone` empty, metadata) plus
   * `extraClaims`, which may override them. Signed ES256 with the signing key when there is
   * one, else HS256 with the secret (a legacy project). It names no `session_id`: no session
   * row stands behind it, so Auth's `/user` and `/logout` refuse it while the REST API accepts it.
   */
  mintUserToken(
    sub: string,
    extraClaims?: Readonly<Record<string, unknown>>,
    options?: MintOptions,
  ): Promise<string>;
  /** Any claims, signed HS256 with the project secret. */
  mintToken(claims: Readonly<Record<string, unknown>>, options?: MintOptions): Promise<string>;
}

export interface CreateKeysOptions {
  /** Signs user tokens (ES256). Without it they are HS256 with the secret. */
  readonly signingKey?: SigningKey;
  /** `iss` of user tokens: `<project url>/auth/v1`. Default `"supabase"`. */
  readonly issuer?: string;
}

/** What verifies a token: the legacy secret (HS256, no `kid`) and the signing key (ES256, its `kid`). */
export interface ProjectKeys {
  readonly jwtSecret: string;
  readonly signingKey?: SigningKey | undefined;
}

const TEN_YEARS = 10 * 365 * 24 * 3600;

function secretKey(secret: string): Uint8Array {
  return new TextEncoder().encode(secret);
}

/** Mints the project keys. The secret must be at least 32 characters, as PostgREST requires. */
export async function createSupabaseKeys(
  jwtSecret: string,
  options: CreateKeysOptions = {},
): Promise<SupabaseKeys> {
  if (jwtSecret.length < 32) throw new Error("[testkit] the JWT secret must be at least 32 characters");
  const key = secretKey(jwtSecret);
  const withTimes = (claims: Readonly<Record<string, unknown>>, mint: MintOptions) => {
    const now = Math.floor(Date.now() / 1000);
    return { iat: now, exp: now + (mint.expiresIn ?? 3600), ...claims };
  };
  const mintToken = async (claims: Readonly<Record<string, unknown>>, mint: MintOptions = {}) =>
    new SignJWT(withTimes(claims, mint)).setProtectedHeader({ alg: "HS256", typ: "JWT" }).sign(key);
  const { signingKey } = options;
  return {
    jwtSecret,
    anonKey: await mintToken({ iss: "supabase", ref: "local", role: "anon" }, { expiresIn: TEN_YEARS }),
    serviceRoleKey: await mintToken(
      { iss: "supabase", ref: "local", role: "service_role" },
      { expiresIn: TEN_YEARS },
    ),
    mintToken,
    mintUserToken: (sub, extraClaims = {}, mint = {}) => {
      const claims = withTimes(
        {
          iss: options.issuer ?? "supabase",
          sub,
          aud: "authenticated",
          email: "",
          phone: "",
          app_metadata: { provider: "email", providers: ["email"] },
          user_metadata: {},
          role: "authenticated",
          aal: "aal1",
          amr: [{ method: "password", timestamp: Math.floor(Date.now() / 1000) }],
          is_anonymous: false,
          ...extraClaims,
        },
        mint,
      );
      return signingKey ? signWithKey(claims, signingKey) : mintToken(claims);
    },
  };
}

/** A token whose header names no key this project has, or an algorithm no key can serve. */
export class KeySelectionError extends Error {
  override readonly name = "KeySelectionError";
  constructor(
    readonly reason: "algorithm" | "key",
    readonly alg: unknown,
    readonly kid: unknown,
  ) {
    super(reason === "algorithm" ? "unsupported algorithm" : "no key for this token");
  }
}

const JWS_ALGORITHMS = new Set([
  "HS256",
  "HS384",
  "HS512",
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA",
]);

/**
 * Verifies a JWT with the key its header selects, as Supabase's services do: HS256 without a
 * `kid` uses the secret; the signing key's `kid` with ES256 uses that key. Anything else (alg
 * none, an unknown kid, another algorithm claiming the EC kid) throws {@link KeySelectionError};
 * a bad signature or claim throws jose's error.
 */
export async function verifyProjectJwt(
  token: string,
  keys: ProjectKeys,
  clockTolerance: number,
): Promise<JWTPayload> {
  const { alg, kid } = decodeProtectedHeader(token);
  if (typeof alg !== "string" || !JWS_ALGORITHMS.has(alg)) throw new KeySelectionError("algorithm", alg, kid);
  let key: Uint8Array | CryptoKey | undefined;
  if (kid === undefined && alg === "HS256") key = secretKey(keys.jwtSecret);
  else if (keys.signingKey !== undefined && kid === keys.signingKey.kid && alg === "ES256") {
    key = keys.signingKey.publicKey;
  }
  if (key === undefined) throw new KeySelectionError("key", alg, kid);
  const { payload } = await jwtVerify(token, key, { algorithms: [alg], clockTolerance });
  return payload;
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
  if (error instanceof KeySelectionError && error.reason === "key") {
    return jwtError("PGRST301", "No suitable key or wrong key type");
  }
  if (
    error instanceof KeySelectionError ||
    error instanceof errors.JOSEAlgNotAllowed ||
    error instanceof errors.JOSENotSupported
  ) {
    return jwtError("PGRST301", "Wrong or unsupported encoding algorithm");
  }
  return jwtError("PGRST301", "JWT cryptographic operation failed");
}

/** PostgREST allows 30 s of clock skew on exp/nbf/iat. */
const POSTGREST_CLOCK_SKEW = 30;

/**
 * Authenticates like Supabase: the API gateway requires an `apikey` (header
 * or query parameter) that is one of the project's HS256 keys; then PostgREST
 * takes `Authorization: Bearer <jwt>` — or, without that header, the apikey
 * itself — verifies it with the key its header selects ({@link verifyProjectJwt})
 * and `exp`/`nbf`/`iat`, and runs as the `role` claim (`anon` when absent). A
 * non-Bearer Authorization means anonymous.
 */
export async function authenticate(
  keys: ProjectKeys,
  apikey: string | undefined,
  authorization: string | undefined,
): Promise<AuthResult> {
  if (apikey === undefined || apikey === "") {
    throw new GatewayError(
      "No API key found in request",
      "No `apikey` request header or url param was found.",
    );
  }
  const apikeyClaims = await verifyApiKey(keys.jwtSecret, apikey);
  let claims: JWTPayload = apikeyClaims;
  if (authorization !== undefined) {
    const bearer = /^bearer\s*(.*)$/is.exec(authorization.trim());
    if (!bearer) claims = {};
    else {
      const token = (bearer[1] ?? "").trim();
      if (token === "") throw jwtError("PGRST301", "Empty JWT is sent in Authorization header");
      try {
        claims = await verifyProjectJwt(token, keys, POSTGREST_CLOCK_SKEW);
      } catch (error) {
        throw translate(error, token);
      }
    }
  }
  const role = typeof claims.role === "string" && claims.role !== "" ? claims.role : "anon";
  return { role, claims: { ...claims, role } };
}

/**
 * What Supabase's API gateway checks before routing to any service: the `apikey` must be one of
 * the project's legacy HS256 keys (anon or service_role). Returns its claims.
 */
export async function verifyApiKey(secret: string, apikey: string): Promise<JWTPayload> {
  try {
    const { payload } = await jwtVerify(apikey, secretKey(secret), {
      algorithms: ["HS256"],
      clockTolerance: POSTGREST_CLOCK_SKEW,
    });
    return payload;
  } catch {
    throw new GatewayError("Invalid API key", "Double check your Supabase `anon` or `service_role` API key.");
  }
}
