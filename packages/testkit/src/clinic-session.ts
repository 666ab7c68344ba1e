import { createHmac, randomUUID } from "node:crypto";
import postgres from "postgres";

export interface ClinicSessionOptions {
  readonly userId: string;
  readonly email?: string;
  /** How the person signed in. Default `online`. */
  readonly signIn?: "online" | "clinic";
  /** Seconds until expiry, from now (negative: already expired). Default 3600. */
  readonly expiresInSeconds?: number;
  readonly sid?: string;
  /** Extra or replaced claims (attack tests). */
  readonly claims?: Readonly<Record<string, unknown>>;
}

const b64url = (data: Buffer | string) => Buffer.from(data).toString("base64url");

/** An HS256 JWT of `claims` with header `kid`, signed with `key` (Node's HMAC, independent of sql/0003's). */
export function signClinicToken(
  key: Buffer,
  keyId: string,
  claims: Readonly<Record<string, unknown>>,
): string {
  const signed = `${b64url(JSON.stringify({ alg: "HS256", typ: "JWT", kid: keyId }))}.${b64url(JSON.stringify(claims))}`;
  return `${signed}.${createHmac("sha256", key).update(signed).digest("base64url")}`;
}

/**
 * A clinic session (sql/0003) for tests and seeds, minted with the clinic server's own key, which
 * `superuserUrl` (the database's owner or a superuser) can read. What the cloud's
 * `cv_clinic_session` or the clinic's `cv_auth.sign_in` would hand a PC.
 */
export async function clinicSession(superuserUrl: string, options: ClinicSessionOptions): Promise<string> {
  const sql = postgres(superuserUrl, { max: 1, onnotice: () => {} });
  try {
    const [row] = await sql<{ key_id: string; key: Buffer }[]>`select key_id, key from cv_auth.signing_key`;
    if (row === undefined)
      throw new Error("this database has no clinic signing key (sql/0003 on a non-Supabase database)");
    const now = Math.floor(Date.now() / 1000);
    return signClinicToken(row.key, row.key_id, {
      sub: options.userId,
      ...(options.email !== undefined && { email: options.email }),
      role: "authenticated",
      aud: "centrovision-clinic",
      sign_in: options.signIn ?? "online",
      sid: options.sid ?? randomUUID(),
      iat: now,
      exp: now + (options.expiresInSeconds ?? 3600),
      ...options.claims,
    });
  } finally {
    await sql.end();
  }
}

/** postgres.js `connection` startup parameters that make a PC login act as the session's person. */
export function asClinicPerson(token: string): Record<string, string> {
  return { role: "authenticated", "centrovision.session": token };
}
