import { CvError } from "@centrovision/core";
import {
  postRpcBytes,
  rpcRequest,
  type SupabaseRealtimeClient,
  type SupabaseRpcClient,
  type SupabaseRpcReply,
} from "@centrovision/sync-engine";
import { type AuthError, createClient, isAuthRetryableFetchError } from "@supabase/supabase-js";
import WebSocket from "ws";

export interface CloudSessionOptions {
  /** Project URL. */
  readonly url: string;
  readonly anonKey: string;
  /** The node credential (`centrovision-sync node create`); the password is never logged. */
  readonly email: string;
  readonly password: string;
}

/** A supabase-js RPC client signed in as the clinic server's node. */
export interface CloudSession extends SupabaseRpcClient {
  /** Stops the token refresh; the session is only in memory, so nothing is left behind. */
  close(): Promise<void>;
}

type RpcReply = SupabaseRpcReply;

/** What to do about a refused node credential: the IT person's two ways out. */
const FIX =
  "check [cloud] node_email and node_password_file, or create the credential again with `centrovision-sync node create`";

function signInError(error: AuthError, host: string, email: string): CvError {
  if (isAuthRetryableFetchError(error) || error.status === undefined || error.status >= 500) {
    return new CvError(
      "unavailable",
      `[sync-daemon] cannot reach cloud (${host}) to sign the node in (HTTP ${error.status || "no response"})`,
      { cause: error },
    );
  }
  if (error.status === 401) {
    return new CvError(
      "unauthorized",
      `[sync-daemon] cloud (${host}) refused the anon key (HTTP 401): copy the project's anon key (Supabase dashboard → Settings → API) into [cloud] anon_key`,
    );
  }
  return new CvError(
    "unauthorized",
    `[sync-daemon] cloud (${host}) refused the node credential ${email} (${error.code ?? `HTTP ${error.status}`}): ${FIX}`,
  );
}

/**
 * The cloud's answer 42501 to a signed-in user: the SQL (cv_sync.require_node) raises it for a
 * user that is not a registered node, or a node acting for another clinic server. Its messages
 * are fixed sentences, never row data.
 */
function notANode(host: string, email: string, fn: string, serverMessage: string): CvError {
  const why = /another clinic server/.test(serverMessage)
    ? "this node credential belongs to another clinic server: each clinic server needs its own, made with `centrovision-sync node create` on it"
    : `it is not a clinic server's node credential: ${FIX}`;
  return new CvError("unauthorized", `[sync-daemon] cloud (${host}) refused ${fn} to ${email}: ${why}`);
}

/**
 * Signs in as the node before the first call and keeps the session in memory: supabase-js
 * refreshes it by itself. When the session is gone (a refresh token revoked, or expired during a
 * long outage) or the cloud refuses its token (HTTP 401), the next call signs in again, so the
 * daemon never needs a restart. Failing to reach the cloud is `unavailable` and changes nothing:
 * the session is kept for when it is back.
 */
export function createCloudSession(options: CloudSessionOptions): CloudSession {
  const host = new URL(options.url).host;
  const client = createClient(options.url, options.anonKey, {
    auth: { persistSession: false, autoRefreshToken: true, detectSessionInUrl: false },
    // Node 20 has no WebSocket: supabase-js takes `ws` for Realtime (the cloud's wake-ups).
    realtime: { transport: WebSocket as never },
    global: { headers: { "x-client-info": "centrovision-sync" } },
  });
  let refused = false;
  let signingIn: Promise<void> | undefined;

  const signIn = async () => {
    const { error } = await client.auth.signInWithPassword({
      email: options.email,
      password: options.password,
    });
    if (error) throw signInError(error, host, options.email);
    refused = false;
  };

  /** The session's access token, signing in first when there is none or the cloud refused it. */
  const ensureSession = async (): Promise<string> => {
    const { session } = (await client.auth.getSession()).data;
    if (!refused && session) return session.access_token;
    // Calls made together share one sign-in.
    signingIn ??= signIn().finally(() => {
      signingIn = undefined;
    });
    await signingIn;
    return (await client.auth.getSession()).data.session?.access_token ?? options.anonKey;
  };

  /** Sends once; a refused token (HTTP 401, which ran nothing) signs in again and sends once more. */
  const call = async (fn: string, send: (token: string) => Promise<RpcReply>): Promise<RpcReply> => {
    let reply = await send(await ensureSession());
    if (reply.status === 401) {
      refused = true;
      reply = await send(await ensureSession());
    }
    if (reply.error?.code === "42501") throw notANode(host, options.email, fn, reply.error.message);
    return reply;
  };

  return {
    rpc: (fn, args) =>
      rpcRequest((signal, retry) =>
        call(fn, async () => {
          const request = client.rpc(fn, args).retry(retry);
          return (await (signal ? request.abortSignal(signal) : request)) as RpcReply;
        }),
      ),
    // supabase-js sends JSON only; the same headers, the node's token.
    rpcBytes: (fn, body) =>
      rpcRequest((signal) =>
        call(fn, (token) =>
          postRpcBytes({ url: options.url, key: options.anonKey, token, fn, body, signal }),
        ),
      ),
    // Realtime as the node: supabase-js hands it every refreshed token by itself.
    async realtimeClient() {
      await ensureSession();
      return client as unknown as SupabaseRealtimeClient;
    },
    async close() {
      // Only when joined: removing the channels disconnects, which arms supabase-js's 10 s timer.
      if (client.getChannels().length > 0) await client.removeAllChannels();
      await client.auth.stopAutoRefresh();
    },
  };
}
