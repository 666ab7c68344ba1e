import { CvError, type ProbeResult } from "@centrovision/core";
import { type ErrorContext, fromPostgrest, fromThrown } from "../supabase-errors.js";

export interface ProbeTarget {
  /** `<project url>/rest/v1/rpc/cv_health`. */
  readonly endpoint: string;
  readonly key: string;
  readonly context: ErrorContext;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

const FAKE_ANSWER = (host: string) =>
  new CvError(
    "unavailable",
    `[adapter-supabase] ${host} answered the health probe, but not as Supabase would (a captive portal or proxy?)`,
  );

/**
 * `GET /rest/v1/rpc/cv_health` (sql/0009_health.sql) with plain `fetch` and the API key only:
 * not through supabase-js, whose requests can wait on the auth session lock before any network
 * I/O, and not with the user's session, whose expiry must not look like an outage. The function
 * runs in PostgreSQL, so an answer proves the whole path (DNS, TLS, gateway, PostgREST, its pool,
 * the database); the `ok: true` body check rejects a captive portal answering 200 with HTML.
 *
 * Outcomes: resolves with the latency; `unauthorized` for a refused key (reachable but
 * misconfigured: the router should alert, not fail over); `unavailable` for network errors,
 * 5xx and fake answers; `unknown` when the cloud lacks the function (migration missing).
 * The caller enforces the deadline and passes its signal, so the body read is bounded too.
 */
export async function probeHealth(target: ProbeTarget, signal: AbortSignal): Promise<ProbeResult> {
  const started = performance.now();
  let response: Response;
  let text: string;
  try {
    response = await fetch(target.endpoint, {
      headers: { apikey: target.key, authorization: `Bearer ${target.key}`, accept: "application/json" },
      signal,
    });
    text = await response.text();
  } catch (error) {
    throw fromThrown(error, target.context);
  }
  const body = parseJson(text);
  if (!response.ok) {
    const isPostgrest = typeof body === "object" && body !== null && !Array.isArray(body);
    // A JSON error body is PostgREST's or the Supabase gateway's; anything else is not Supabase.
    if (!isPostgrest && response.status < 500 && response.status !== 401 && response.status !== 403) {
      throw FAKE_ANSWER(target.context.host);
    }
    throw fromPostgrest(isPostgrest ? (body as Record<string, string>) : {}, response.status, target.context);
  }
  if ((body as { ok?: unknown } | undefined)?.ok !== true) throw FAKE_ANSWER(target.context.host);
  return { latencyMs: performance.now() - started };
}
