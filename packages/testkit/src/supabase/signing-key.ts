/**
 * The project's asymmetric JWT signing key, as a Supabase project migrated to signing keys has:
 * one ES256 (P-256) key with a `kid` signs user access tokens; its public half is published at
 * `/auth/v1/.well-known/jwks.json`. The legacy HS256 secret still signs the anon and
 * service_role keys.
 */
import { randomUUID } from "node:crypto";
import { type CryptoKey, exportJWK, generateKeyPair, importJWK, type JWK, SignJWT } from "jose";

/** The public JWK as Supabase Auth serves it: never a private parameter. */
export interface PublicSigningJwk {
  readonly kty: "EC";
  readonly crv: "P-256";
  readonly x: string;
  readonly y: string;
  readonly kid: string;
  readonly alg: "ES256";
  readonly use: "sig";
  readonly key_ops: readonly ["verify"];
}

export interface JsonWebKeySet {
  readonly keys: readonly PublicSigningJwk[];
}

export interface SigningKey {
  readonly kid: string;
  readonly privateKey: CryptoKey;
  readonly publicKey: CryptoKey;
  readonly publicJwk: PublicSigningJwk;
  /** The private JWK (with `d`), for the data directory's state file only. */
  readonly privateJwk: JWK;
}

function publicJwkOf(jwk: JWK, kid: string): PublicSigningJwk {
  if (jwk.kty !== "EC" || jwk.crv !== "P-256" || !jwk.x || !jwk.y) {
    throw new Error("[testkit] the signing key must be an EC P-256 key");
  }
  return { kty: "EC", crv: "P-256", x: jwk.x, y: jwk.y, kid, alg: "ES256", use: "sig", key_ops: ["verify"] };
}

/** Imports a private P-256 JWK with a `kid` (as saved by {@link generateSigningKey}). */
export async function importSigningKey(jwk: JWK): Promise<SigningKey> {
  if (typeof jwk.kid !== "string" || jwk.kid === "" || typeof jwk.d !== "string") {
    throw new Error("[testkit] the signing key must be a private JWK with a kid");
  }
  const publicJwk = publicJwkOf(jwk, jwk.kid);
  const privateKey = (await importJWK(
    { kty: "EC", crv: "P-256", x: jwk.x, y: jwk.y, d: jwk.d },
    "ES256",
  )) as CryptoKey;
  const publicKey = (await importJWK(
    { kty: "EC", crv: "P-256", x: publicJwk.x, y: publicJwk.y },
    "ES256",
  )) as CryptoKey;
  return {
    kid: jwk.kid,
    privateKey,
    publicKey,
    publicJwk,
    privateJwk: { kty: "EC", crv: "P-256", x: jwk.x, y: jwk.y, d: jwk.d, kid: jwk.kid, alg: "ES256" },
  };
}

/** A fresh ES256 key whose `kid` is a UUID, as Supabase names its keys. */
export async function generateSigningKey(): Promise<SigningKey> {
  const { privateKey } = await generateKeyPair("ES256", { extractable: true });
  const jwk = await exportJWK(privateKey);
  return importSigningKey({ ...jwk, kid: randomUUID() });
}

/** The JWKS Supabase Auth publishes: the public half of the signing key, nothing symmetric. */
export function jwksOf(key: SigningKey): JsonWebKeySet {
  return { keys: [key.publicJwk] };
}

/** Signs `claims` as Supabase Auth does: ES256, with the key's `kid` and `typ: "JWT"` in the header. */
export function signWithKey(claims: Readonly<Record<string, unknown>>, key: SigningKey): Promise<string> {
  return new SignJWT({ ...claims })
    .setProtectedHeader({ alg: "ES256", kid: key.kid, typ: "JWT" })
    .sign(key.privateKey);
}
