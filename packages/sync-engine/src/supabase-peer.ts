import { GATEWAY_DOWN, isServerDown } from "@centrovision/adapter-supabase/driver-errors";
import { type CallOptions, CvError, withDeadline } from "@centrovision/core";
import * as z from "zod";
import { parseOptions } from "./internal/options.js";
import { createRpcPeer, type RpcBytesInvoker, type RpcInvoker, withChangeFeed } from "./internal/rpc-peer.js";
import { listenForWakeups } from "./internal/wake-feed.js";
import { fromSqlState } from "./sync-errors.js";
import type { SyncPeer } from "./sync-peer.js";

/** PostgREST's error body, as supabase-js hands it over. */
export interface PostgrestErrorLike {
  readonly code: string;
  readonly message: string;
}

/** What a supabase-js RPC request resolves with. */
export interface SupabaseRpcReply {
  readonly data: unknown;
  readonly error: PostgrestErrorLike | null;
  readonly status: number;
}

/** A supabase-js RPC request: awaitable, abortable, with its own retries switchable. */
export interface SupabaseRpcRequest extends PromiseLike<SupabaseRpcReply> {
  abortSignal(signal: AbortSignal): SupabaseRpcRequest;
  retry(enabled: boolean): SupabaseRpcRequest;
}

/** The slice of a supabase-js client the peer uses; a `SupabaseClient` fits. */
export interface SupabaseRpcClient {
  rpc(fn: string, args: Record<string, unknown>): SupabaseRpcRequest;
  /**
   * Calls `fn` with `body` as the whole request (`Content-Type: application/octet-stream`), which
   * PostgREST hands to the function's single unnamed bytea parameter (supabase-js sends JSON
   * only): {@link postRpcBytes} with the client's key and token. Without it every batch goes up
   * as JSON, uncompressed.
   */
  rpcBytes?(fn: string, body: Uint8Array<ArrayBuffer>): SupabaseRpcRequest;
  /**
   * The supabase-js client to hear the cloud's wake-ups on (Realtime), signed in as the same user
   * as the RPCs. Without it the peer has no `changes$` and the engine polls.
   */
  realtimeClient?(): Promise<SupabaseRealtimeClient>;
}

/** A Realtime channel, as much of supabase-js's `RealtimeChannel` as the wake-ups use. */
export interface RealtimeChannelLike {
  on(
    type: "broadcast",
    filter: { event: string },
    callback: (message: { payload?: unknown }) => void,
  ): RealtimeChannelLike;
  subscribe(callback?: (status: string) => void): RealtimeChannelLike;
}

/** As much of a supabase-js client as the wake-ups use (`channel`, `removeChannel`, `realtime.setAuth`). */
export interface SupabaseRealtimeClient {
  channel(name: string, options: { config: { private: boolean } }): RealtimeChannelLike;
  removeChannel(channel: RealtimeChannelLike): Promise<unknown>;
  readonly realtime: { setAuth(token?: string | null): Promise<void> };
}

export interface SupabasePeerOptions {
  /** Project URL (`https://<ref>.supabase.co`). */
  url: string;
  /**
   * A key to create the client with when none is injected (the service-role key, for an
   * administrator's tools; a clinic server's daemon injects a client signed in as its node
   * credential instead). Never logged.
   */
  key?: string;
  /** A client instead of `key` (instance, or a factory called once on first use). */
  client?: SupabaseRpcClient | (() => SupabaseRpcClient);
  /** Default deadline of a call. Default 15 000 ms. */
  timeoutMs?: number;
  /** Name in messages. Default `cloud (<host>)`. */
  label?: string;
}

const optionsSchema = z
  .object({
    url: z.url(),
    key: z.string().min(1).optional(),
    client: z
      .custom<SupabasePeerOptions["client"]>(
        (v) => typeof v === "function" || (typeof v === "object" && v !== null),
      )
      .optional(),
    timeoutMs: z.int().positive().default(15_000),
    label: z.string().min(1).optional(),
  })
  .strict()
  .refine((o) => o.key !== undefined || o.client !== undefined, {
    message: "give key (to create a client) or client",
    path: ["key"],
  });

/**
 * supabase-js is imported only when the peer must create the client itself, so a caller that
 * injects one does not load it. Node 20 has no WebSocket: supabase-js takes `ws` for Realtime,
 * which the wake-ups use.
 */
async function createDefaultClient(
  url: string,
  key: string,
): Promise<SupabaseRpcClient & { disconnect(): void }> {
  const [{ createClient }, { default: WebSocket }] = await Promise.all([
    import("@supabase/supabase-js"),
    import("ws"),
  ]);
  const client = createClient(url, key, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    realtime: { transport: WebSocket as never },
    global: { headers: { "x-client-info": "centrovision-sync" } },
  });
  return {
    rpc: (fn, args) => client.rpc(fn, args),
    rpcBytes: (fn, body) => rpcRequest((signal) => postRpcBytes({ url, key, token: key, fn, body, signal })),
    // supabase-js's overloaded `on` is wider than the slice: the cast only narrows it.
    realtimeClient: async () => client as unknown as SupabaseRealtimeClient,
    // Left open, the socket would hold the process for about a minute after the last channel
    // left (supabase-js disconnects an empty socket only after two heartbeats). Not awaited: with
    // the cloud unreachable, the closing handshake waits out supabase-js's 10 s.
    disconnect: () => {
      client.realtime.disconnect().catch(() => {});
    },
  };
}

/**
 * A request that runs `send` when awaited, as a supabase-js request does, with the abort signal
 * and the retry switch it was given (postgrest-js retries only reads; `postRpcBytes` never).
 */
export function rpcRequest(
  send: (signal: AbortSignal | undefined, retry: boolean) => Promise<SupabaseRpcReply>,
): SupabaseRpcRequest {
  let signal: AbortSignal | undefined;
  let retry = true;
  const request: SupabaseRpcRequest = {
    abortSignal(value) {
      signal = value;
      return request;
    },
    retry(enabled) {
      retry = enabled;
      return request;
    },
    // biome-ignore lint/suspicious/noThenProperty: a supabase-js request is awaited like this one.
    then(onFulfilled, onRejected) {
      return send(signal, retry).then(onFulfilled, onRejected);
    },
  };
  return request;
}

/**
 * POSTs `body` to `rpc/<fn>` as `application/octet-stream`, with the headers supabase-js sends
 * (`apikey`, the bearer `token`, `x-client-info`), and answers as supabase-js does: the parsed
 * JSON, or PostgREST's error body; status 0 with no response.
 */
export async function postRpcBytes(input: {
  url: string;
  key: string;
  token: string;
  fn: string;
  body: Uint8Array<ArrayBuffer>;
  signal: AbortSignal | undefined;
}): Promise<SupabaseRpcReply> {
  let response: Response;
  try {
    response = await fetch(`${input.url.replace(/\/+$/, "")}/rest/v1/rpc/${encodeURIComponent(input.fn)}`, {
      method: "POST",
      headers: {
        apikey: input.key,
        Authorization: `Bearer ${input.token}`,
        "Content-Type": "application/octet-stream",
        Accept: "application/json",
        "x-client-info": "centrovision-sync",
      },
      body: input.body,
      signal: input.signal,
    });
  } catch (error) {
    if (input.signal?.aborted) throw error;
    return { data: null, error: { code: "", message: String(error) }, status: 0 };
  }
  const text = await response.text();
  let parsed: unknown = null;
  try {
    parsed = text === "" ? null : JSON.parse(text);
  } catch {
    parsed = { code: "", message: text.slice(0, 200) };
  }
  if (response.ok) return { data: parsed, error: null, status: response.status };
  const body = parsed as Partial<PostgrestErrorLike> | null;
  return {
    data: null,
    error: { code: typeof body?.code === "string" ? body.code : "", message: String(body?.message ?? "") },
    status: response.status,
  };
}

function toCvError(error: PostgrestErrorLike, status: number, label: string, fn: string): CvError {
  const code = error.code ?? "";
  if (code === "PGRST003") {
    return new CvError(
      "timeout",
      `[sync-engine] ${label} had no free database connection in time (PGRST003)`,
    );
  }
  if (/^PGRST00[0-2]$/.test(code) || (code === "" && (status === 0 || GATEWAY_DOWN.has(status)))) {
    return new CvError(
      "unavailable",
      `[sync-engine] cannot reach ${label} (HTTP ${status || "no response"})`,
    );
  }
  if (code === "PGRST202" || code === "PGRST203") {
    return new CvError(
      "invalid_config",
      `[sync-engine] ${label} has no matching public.${fn} (${code}); apply the sql/ migrations there`,
    );
  }
  if (status === 401 || code === "PGRST301" || code === "PGRST302") {
    return new CvError(
      "unauthorized",
      `[sync-engine] ${label} refused the key (HTTP ${status}, ${code || "no code"})`,
    );
  }
  if (isServerDown(code, status)) {
    return new CvError("unavailable", `[sync-engine] ${label} is not serving (${code || `HTTP ${status}`})`);
  }
  if (/^[0-9A-Z]{5}$/.test(code) && !code.startsWith("PGRST"))
    return fromSqlState(code, label, error.message, fn);
  return new CvError("unknown", `[sync-engine] ${label} answered HTTP ${status} (${code || "no code"})`);
}

/**
 * A {@link SyncPeer} over supabase-js RPC (PostgREST): one HTTP request, one database transaction
 * per call. postgrest-js's own retries are off (the engine paces retries itself, and a retried
 * request could outlive its deadline) and every request is aborted at its deadline. Its
 * `changes$` hears the cloud's wake-ups (sql/0016) on Realtime when the client offers
 * `realtimeClient`.
 */
export function createSupabasePeer(input: SupabasePeerOptions): SyncPeer {
  const options = parseOptions("supabase peer", optionsSchema, input);
  const label = options.label ?? `cloud (${new URL(options.url).host})`;
  const given = options.client;
  let client: Promise<SupabaseRpcClient & { disconnect?(): void }> | undefined;

  const getClient = (): Promise<SupabaseRpcClient> => {
    client ??=
      given === undefined
        ? createDefaultClient(options.url, options.key as string)
        : Promise.resolve(typeof given === "function" ? given() : given);
    return client;
  };

  const invoker = createSupabaseInvoker(label, getClient, options.timeoutMs);
  // A client the peer made itself (with `key`) is the peer's to disconnect; an injected one is the caller's.
  const close = async () => {
    await invoker.close();
    if (given === undefined) (await client?.catch(() => undefined))?.disconnect?.();
  };
  return withChangeFeed(createRpcPeer(label, invoker.invoke, close, invoker.invokeBytes), (onListening) =>
    listenForWakeups(async () => (await getClient()).realtimeClient?.(), {
      retryMs: WAKE_RETRY_MS,
      onListening,
    }),
  );
}

/** Pause before joining the wake-up channel again when the cloud could not be reached to join it. */
const WAKE_RETRY_MS = 5_000;

/** The transport of {@link createSupabasePeer}, shared with the client applier. */
export function createSupabaseInvoker(
  label: string,
  getClient: () => SupabaseRpcClient | Promise<SupabaseRpcClient>,
  timeoutMs: number,
): { invoke: RpcInvoker; invokeBytes: RpcBytesInvoker; close(): Promise<void> } {
  let closed = false;
  const send = async (
    fn: string,
    callOptions: CallOptions | undefined,
    request: (client: SupabaseRpcClient) => SupabaseRpcRequest,
  ) => {
    if (closed) throw new CvError("unavailable", `[sync-engine] the peer for ${label} is closed`);
    const client = await getClient();
    const reply = await withDeadline(`[sync-engine] ${label} ${fn}`, callOptions, timeoutMs, (signal) =>
      Promise.resolve(request(client).abortSignal(signal).retry(false)),
    );
    if (reply.error) throw toCvError(reply.error, reply.status, label, fn);
    return reply.data;
  };
  const invoke: RpcInvoker = (fn, args, callOptions) =>
    send(fn, callOptions, (client) => client.rpc(fn, args as Record<string, unknown>));
  const invokeBytes: RpcBytesInvoker = async (fn, body, callOptions) => {
    const client = await getClient();
    const rpcBytes = client.rpcBytes?.bind(client);
    if (rpcBytes === undefined) return undefined;
    return send(fn, callOptions, () => rpcBytes(fn, body));
  };
  return {
    invoke,
    invokeBytes,
    close: async () => {
      closed = true;
    },
  };
}
