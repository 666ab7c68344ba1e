import { createClient, type SupabaseClient } from "@supabase/supabase-js";
import WebSocket from "ws";

/** Where auth-js keeps its session in the PC's session storage. */
export const AUTH_STORAGE_KEY = "centrovision-auth";

/** The part of auth-js's stored session this app reads. */
export interface StoredAuthSession {
  readonly access_token: string;
  readonly refresh_token: string;
  /** Seconds since the epoch. */
  readonly expires_at?: number;
}

export function storedAuthSession(items: Readonly<Record<string, string>>): StoredAuthSession | null {
  const raw = items[AUTH_STORAGE_KEY];
  try {
    const parsed = raw === undefined ? null : JSON.parse(raw);
    return typeof parsed?.access_token === "string" ? (parsed as StoredAuthSession) : null;
  } catch {
    return null;
  }
}

/** Refresh refusals after which the refresh token can never work again. */
const REFUSED_FOR_GOOD = new Set([
  "refresh_token_not_found",
  "refresh_token_already_used",
  "user_banned",
  "user_not_found",
  "session_not_found",
  "session_expired",
]);

export interface AuthClientOptions {
  readonly url: string;
  readonly anonKey: string;
  /** auth-js's `storage`: the session is persisted there and nowhere else. */
  readonly storage: {
    getItem(key: string): string | null;
    setItem(key: string, value: string): Promise<void>;
    removeItem(key: string): Promise<void>;
  };
  /** Deadline of each request to Supabase Auth, read for every request. */
  readonly timeoutMs: () => number;
  readonly fetch?: typeof fetch;
  /** A refresh with `refreshToken` was refused with one of the codes that are final. */
  readonly onRefusedForGood: (refreshToken: string, code: string) => Promise<void>;
}

/**
 * supabase-js's auth client for the PC: the session persisted in the given storage and renewed by
 * auth-js's own timer. Its fetch adds what auth-js lacks: a deadline on every request (a
 * blackholed cloud would hold a sign-in for minutes), and word of a refresh refused for good, so
 * the session ends at once rather than when its access token expires (auth-js keeps it till then).
 */
export function createAuthClient(options: AuthClientOptions): SupabaseClient {
  const base = options.fetch ?? fetch;
  const authFetch: typeof fetch = async (input, init) => {
    const deadline = AbortSignal.timeout(options.timeoutMs());
    const signal = init?.signal ? AbortSignal.any([init.signal, deadline]) : deadline;
    const response = await base(input, { ...init, signal });
    const url = input instanceof Request ? input.url : String(input);
    if (url.includes("grant_type=refresh_token") && response.status >= 400 && response.status < 500) {
      // auth-js sends X-Supabase-Api-Version 2024-01-01, so the code is `code`; older servers say `error_code`.
      const body = (await response
        .clone()
        .json()
        .catch(() => null)) as { code?: unknown; error_code?: unknown } | null;
      const code = String(body?.code ?? body?.error_code ?? "");
      const sent = (() => {
        try {
          return JSON.parse(String(init?.body)) as { refresh_token?: unknown };
        } catch {
          return {};
        }
      })();
      if (REFUSED_FOR_GOOD.has(code) && typeof sent.refresh_token === "string") {
        await options.onRefusedForGood(sent.refresh_token, code);
      }
    }
    return response;
  };
  return createClient(options.url, options.anonKey, {
    auth: {
      storage: options.storage,
      storageKey: AUTH_STORAGE_KEY,
      persistSession: true,
      autoRefreshToken: true,
      detectSessionInUrl: false,
    },
    global: { fetch: authFetch },
    // Node 20 has no global WebSocket; supabase-js refuses to build a client without one.
    realtime: { transport: WebSocket as never },
  });
}

/** The person's `profiles.full_name` (readable by its owner under RLS), or null. */
export async function profileName(
  client: SupabaseClient,
  id: string,
  timeoutMs: number,
): Promise<string | null> {
  try {
    const { data } = await client
      .from("profiles")
      .select("full_name")
      .eq("id", id)
      .abortSignal(AbortSignal.timeout(timeoutMs))
      .maybeSingle();
    const name = (data as { full_name?: unknown } | null)?.full_name;
    return typeof name === "string" && name.trim() !== "" ? name : null;
  } catch {
    return null;
  }
}
