import { createClient, type WebSocketLikeConstructor } from "@supabase/supabase-js";
import WebSocket from "ws";
import type { PostgrestErrorLike } from "../supabase-errors.js";

/** What awaiting a query gives: postgrest-js resolves (never rejects) unless told to throw. */
export interface PostgrestResultLike {
  readonly data: unknown;
  readonly error: PostgrestErrorLike | null;
  readonly status: number;
}

/**
 * The runtime shape of postgrest-js's filter/transform builder this adapter relies on. Callers
 * inject a `SupabaseClientSlice` (supabase-js's own type); it is cast to this once, because
 * checking supabase-js's generic builders against it exceeds TypeScript's instantiation depth.
 */
export interface FilterBuilderLike extends PromiseLike<PostgrestResultLike> {
  eq(column: string, value: string | number | boolean): this;
  is(column: string, value: null): this;
  not(column: string, operator: "is", value: null): this;
  filter(column: string, operator: string, value: unknown): this;
  order(column: string, options: { ascending: boolean; nullsFirst: boolean }): this;
  range(from: number, to: number): this;
  select(columns: string): this;
  /** A cancelled request stops at once instead of waiting for undici's 300 s header timeout. */
  abortSignal(signal: AbortSignal): this;
  /** postgrest-js (≥ 2.102) retries GETs on network errors and 503/520 for ~7 s; the router owns retries. */
  retry(enabled: boolean): this;
  maybeSingle(): PromiseLike<PostgrestResultLike>;
  single(): PromiseLike<PostgrestResultLike>;
}

export interface QueryBuilderLike {
  select(columns: string): FilterBuilderLike;
  insert(values: Record<string, unknown>): FilterBuilderLike;
  upsert(
    values: Record<string, unknown> | Record<string, unknown>[],
    options: { onConflict: string },
  ): FilterBuilderLike;
  update(values: Record<string, unknown>): FilterBuilderLike;
  delete(): FilterBuilderLike;
}

/** The only method of `SupabaseClient` this adapter calls. */
export interface SupabaseClientLike {
  from(relation: string): QueryBuilderLike;
}

export interface DefaultClientOptions {
  readonly url: string;
  readonly key: string;
  /** A user's session token, or a function returning the current one; else the key is the bearer. */
  readonly accessToken: string | (() => string | Promise<string>) | undefined;
}

/**
 * A supabase-js client that never touches auth-js: with the `accessToken` option supabase-js
 * builds no GoTrue client, so no request can wait on its session lock (supabase-js#2376, auth-js#762),
 * and nothing refreshes or persists a session behind the caller's back.
 */
export function createDefaultClient({ url, key, accessToken }: DefaultClientOptions): SupabaseClientLike {
  const token = typeof accessToken === "function" ? accessToken : async () => accessToken ?? key;
  return createClient(url, key, {
    accessToken: async () => token(),
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    // Node 20 has no global WebSocket and createClient throws without one; realtime is never
    // connected (no channel is opened). ws's typings do not match realtime-js's, the class does.
    realtime: { transport: WebSocket as unknown as WebSocketLikeConstructor },
  }) as unknown as SupabaseClientLike;
}
