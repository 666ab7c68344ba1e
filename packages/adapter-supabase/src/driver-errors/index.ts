/**
 * How supabase-js (postgrest-js over undici) says a project is out of reach: the one table the
 * data source and the sync engine's peer share (`@centrovision/adapter-supabase/driver-errors`,
 * which loads no client), so both fail over on exactly the same answers.
 */

/**
 * HTTP statuses of a gateway or proxy in front of a database that is not serving: the usual 502,
 * 503, 504, and Cloudflare's 52x and 530 (origin down, timed out, TLS to it failed, DNS).
 */
export const GATEWAY_DOWN: ReadonlySet<number> = new Set([
  502, 503, 504, 520, 521, 522, 523, 524, 525, 526, 530,
]);

/** SQLSTATE / PostgREST codes of a database that is there but not serving (08, 53, 57P01-03, PGRST000-003). */
export const DATABASE_DOWN = /^(08|53|57P0[123]$|PGRST00[0-3]$)/;

/** Whether an answer (its code, its HTTP status) means the project's database is not serving. */
export function isServerDown(code: string, status: number): boolean {
  return DATABASE_DOWN.test(code) || GATEWAY_DOWN.has(status);
}
