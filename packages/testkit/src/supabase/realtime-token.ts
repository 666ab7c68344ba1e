/**
 * How Supabase Realtime checks the JWT a channel joins with (supabase/realtime
 * `lib/realtime_web/channels/auth/jwt_verification.ex` and `channels_authorization.ex`), which is
 * not PostgREST's check: an HS* token uses the project secret whatever its `kid`; an ES* token
 * needs the `kid` of a key in the project's JWKS; `exp` must be in the future with no leeway; `nbf`
 * is not looked at; `role` and `exp` must be present.
 */
import { type CryptoKey, compactVerify, decodeJwt, decodeProtectedHeader } from "jose";
import type { ProjectKeys } from "./jwt.js";

export type TokenFailure =
  | { readonly kind: "malformed" }
  | { readonly kind: "signer"; readonly kid: string | undefined }
  | { readonly kind: "signature" }
  | { readonly kind: "expired"; readonly secondsAgo: number }
  | { readonly kind: "missing_claims" }
  /** Claims Joken rejects without a dedicated message (a non-numeric `exp` or `iat`, a non-object). */
  | { readonly kind: "invalid_claims" };

export type TokenCheck =
  | { readonly ok: true; readonly claims: Readonly<Record<string, unknown>>; readonly exp: number }
  | { readonly ok: false; readonly failure: TokenFailure };

const HS = new Set(["HS256", "HS384", "HS512"]);
const ES = new Set(["ES256", "ES384", "ES512"]);

/** Realtime strips whitespace from a percent-decoded token before reading it. */
function clean(token: string): string {
  let decoded = token;
  try {
    decoded = decodeURIComponent(token);
  } catch {
    // Not percent-encoded after all: use it as given.
  }
  return decoded.replace(/\s/g, "");
}

function now(): number {
  return Math.floor(Date.now() / 1000);
}

function fail(failure: TokenFailure): TokenCheck {
  return { ok: false, failure };
}

/** Verifies `token` as Realtime does when a channel joins, refreshes its token, or re-checks it. */
export async function checkRealtimeToken(raw: string, keys: ProjectKeys): Promise<TokenCheck> {
  const token = clean(raw);
  let claims: Record<string, unknown>;
  let header: { alg?: unknown; kid?: unknown };
  try {
    claims = decodeJwt(token) as Record<string, unknown>;
    header = decodeProtectedHeader(token);
  } catch {
    return fail({ kind: "malformed" });
  }
  const kid = typeof header.kid === "string" ? header.kid : undefined;
  const alg = typeof header.alg === "string" ? header.alg : "";
  let key: Uint8Array | CryptoKey | undefined;
  if (HS.has(alg)) key = new TextEncoder().encode(keys.jwtSecret);
  else if (ES.has(alg) && kid !== undefined && kid === keys.signingKey?.kid) key = keys.signingKey.publicKey;
  if (key === undefined) return fail({ kind: "signer", kid });
  try {
    await compactVerify(token, key, { algorithms: [alg] });
  } catch {
    return fail({ kind: "signature" });
  }
  const { exp, iat } = claims;
  if (exp !== undefined && !(typeof exp === "number" && exp > now())) {
    return typeof exp === "number"
      ? fail({ kind: "expired", secondsAgo: now() - Math.round(exp) })
      : fail({ kind: "invalid_claims" });
  }
  if (iat !== undefined && typeof iat !== "number") return fail({ kind: "invalid_claims" });
  if (!("role" in claims) || exp === undefined) return fail({ kind: "missing_claims" });
  const rounded = {
    ...claims,
    exp: Math.round(exp),
    ...(typeof iat === "number" && { iat: Math.round(iat) }),
  };
  return { ok: true, claims: rounded, exp: rounded.exp };
}

/** The join's error reason, `Code: message`, as Realtime's channel replies it. */
export function joinRefusal(failure: TokenFailure): string {
  switch (failure.kind) {
    case "malformed":
      return "MalformedJWT: The token provided is not a valid JWT";
    case "expired":
      return `InvalidJWTToken: Token has expired ${failure.secondsAgo} seconds ago`;
    case "missing_claims":
      return "InvalidJWTToken: Fields `role` and `exp` are required in JWT";
    case "signature":
      return "JwtSignatureError: Failed to validate JWT signature";
    case "signer":
      return `JwtSignerError: ${signerMessage(failure.kid)}`;
    case "invalid_claims":
      return "Unknown Error on Channel";
  }
}

/**
 * The `system` message a joined channel is closed with when its token stops verifying (on a
 * refresh or when it expires), as Realtime's `shutdown_response` words it.
 */
export function shutdownMessage(failure: TokenFailure): string {
  switch (failure.kind) {
    case "malformed":
      return "The token provided is not a valid JWT";
    case "expired":
      return `Token has expired ${failure.secondsAgo} seconds ago`;
    case "missing_claims":
      return "Fields `role` and `exp` are required in JWT";
    case "signature":
      return ":signature_error";
    case "signer":
      return failure.kid === undefined ? ":error_generating_signer" : signerMessage(failure.kid);
    case "invalid_claims":
      return "Invalid token: `exp` and `iat` must be numbers";
  }
}

function signerMessage(kid: string | undefined): string {
  return kid === undefined
    ? "Failed to generate JWT signer, check your JWT secret or JWKS configuration"
    : `Failed to generate JWT signer for key ID (kid) ${JSON.stringify(kid)}, check your JWT secret or JWKS configuration`;
}
