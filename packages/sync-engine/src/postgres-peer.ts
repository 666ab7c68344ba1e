import type { ConnectionOptions } from "node:tls";
import {
  driverCode,
  isConnectionFailure,
  NETWORK_REASONS,
} from "@centrovision/adapter-postgres/driver-errors";
import { type CallOptions, CvError, isCvError, withDeadline } from "@centrovision/core";
import postgres from "postgres";
import * as z from "zod";
import { listenForChanges } from "./internal/change-feed.js";
import { parseOptions } from "./internal/options.js";
import {
  createRpcPeer,
  RPC_SIGNATURES,
  type RpcInvoker,
  type RpcName,
  VOID_RPCS,
  withChangeFeed,
} from "./internal/rpc-peer.js";
import { fromSqlState } from "./sync-errors.js";
import type { SyncPeer } from "./sync-peer.js";

/** A pending query of the `postgres` driver: awaitable, and cancellable on the server. */
export interface PostgresQuery extends PromiseLike<readonly Record<string, unknown>[]> {
  cancel(): unknown;
}

/** The slice of a `postgres` (porsager) client the peer uses; a `postgres.Sql` fits. */
export interface PostgresClient {
  unsafe(query: string, parameters: (string | null)[], options: { prepare: boolean }): PostgresQuery;
  end(options?: { timeout?: number }): Promise<void>;
}

export interface PostgresPeerOptions {
  /** Connection URL of the node (a login in `centrovision_sync`). The peer owns its small pool. */
  url?: string;
  /**
   * A client instead of `url`. An instance is used as is and never closed or replaced; a factory
   * is called lazily, and again to replace a client that missed a deadline.
   */
  sql?: PostgresClient | (() => PostgresClient);
  /** Default deadline of a call. Default 15 000 ms. */
  timeoutMs?: number;
  /** Pool size when the peer creates the client. Default 3 (an apply, a prefetched pull, an ack). */
  max?: number;
  /** Name in messages. Default `clinic server <host>:<port>/<database>`. */
  label?: string;
  /**
   * With `url`: the person's clinic session (sql/0003), read before every call. While it returns a
   * token the connections run as role `authenticated` with it (a PC's client apply, under the same
   * policies as the cloud); another token replaces the pool; `undefined` connects as the login alone.
   */
  session?: () => string | undefined;
  /**
   * With `url`: TLS to the server, as the `postgres` client takes it (`false`, `"require"`, or
   * Node TLS options: adapter-postgres's `tlsOptions("verify-full", host, caPem)` checks the
   * clinic server the way its data source does). Default: none.
   */
  ssl?: false | "require" | ConnectionOptions;
}

const DEFAULT_TIMEOUT_MS = 15_000;

/** Seconds to wait for a connection: the call's deadline, at most 10 s, at least 1 s. */
function connectTimeoutS(timeoutMs: number): number {
  return Math.max(1, Math.ceil(Math.min(timeoutMs, 10_000) / 1000));
}

const optionsSchema = z
  .object({
    url: z.string().min(1).optional(),
    sql: z
      .custom<PostgresPeerOptions["sql"]>(
        (v) => typeof v === "function" || (typeof v === "object" && v !== null),
      )
      .optional(),
    timeoutMs: z.int().positive().default(DEFAULT_TIMEOUT_MS),
    max: z.int().min(1).max(20).default(3),
    label: z.string().min(1).optional(),
    session: z.custom<() => string | undefined>((v) => typeof v === "function").optional(),
    ssl: z
      .custom<false | "require" | ConnectionOptions>(
        (v) => v === false || v === "require" || (typeof v === "object" && v !== null),
      )
      .optional(),
  })
  .strict()
  .refine((o) => (o.url === undefined) !== (o.sql === undefined), {
    message: "give exactly one of url or sql",
    path: ["url"],
  });

/** `host:port/database` of a URL, without user or password. */
function describeUrl(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.hostname}:${parsed.port || "5432"}${parsed.pathname}`;
  } catch {
    return "(unparsable URL)";
  }
}

function toCvError(error: unknown, label: string, fn: string): CvError {
  if (error instanceof CvError) return error;
  if (error instanceof postgres.PostgresError) return fromSqlState(error.code, label, error.message, fn);
  const code = driverCode(error);
  if (code !== undefined && isConnectionFailure(error)) {
    const reason = NETWORK_REASONS[code] ?? "TLS verification failed";
    return new CvError("unavailable", `[sync-engine] cannot reach ${label} (${reason}, ${code})`, {
      cause: { code },
    });
  }
  return new CvError("unknown", `[sync-engine] unexpected error from the postgres driver for ${label}`, {
    cause: { name: (error as { name?: unknown } | null)?.name },
  });
}

/** Startup parameters: as the person of a clinic session (role authenticated), or as the login alone. */
function sessionConnection(session: string | undefined): { connection: Record<string, string> } {
  return {
    connection: {
      application_name: "centrovision-sync",
      ...(session !== undefined && { role: "authenticated", "centrovision.session": session }),
    },
  };
}

function isClient(value: unknown): value is PostgresClient {
  return (
    (typeof value === "function" || typeof value === "object") &&
    value !== null &&
    typeof (value as { unsafe?: unknown }).unsafe === "function"
  );
}

function textArgument(type: string, value: unknown): string | null {
  if (value === null) return null;
  return type === "jsonb" ? JSON.stringify(value) : String(value);
}

/**
 * Functions that return a set of `json` values (built as text): handed over as their array, as
 * PostgREST sends it; the driver parses each as it parses jsonb. Wrapping them in `to_jsonb` would
 * re-parse a 10,000-change page on the server before sending it.
 */
const SET_RPCS: ReadonlySet<RpcName> = new Set(["cv_sync_pull", "cv_sync_snapshot"]);

/**
 * A statement calling `fn` with named arguments. Every value travels as text and is cast on the
 * server, so the driver never guesses a type (it would JSON-encode a string bound to jsonb twice).
 */
function statement(
  fn: RpcName,
  args: Readonly<Record<string, unknown>>,
): { text: string; values: (string | null)[] } {
  const signature: Readonly<Record<string, string>> = RPC_SIGNATURES[fn];
  const names = Object.keys(signature).filter((name) => args[name] !== undefined);
  const list = names.map((name, i) => `${name} => $${i + 1}::text::${signature[name]}`).join(", ");
  const call = `public.${fn}(${list})`;
  return {
    text: VOID_RPCS.has(fn)
      ? `select ${call}::text as r`
      : SET_RPCS.has(fn)
        ? `select r from ${call} r`
        : `select to_jsonb(${call}) as r`,
    values: names.map((name) => textArgument(signature[name] as string, args[name])),
  };
}

/**
 * A {@link SyncPeer} over a direct PostgreSQL connection (the clinic server). A call that misses
 * its deadline is cancelled on the server and its pool replaced: its socket may be half-open, and
 * the next call must not queue behind it for the minutes TCP takes to give up. With `url` it has
 * `changes$`: one more connection, opened while someone subscribes, that LISTENs for the clinic
 * server's `cv_sync_change` (sent once per statement that logged a change).
 */
export function createPostgresPeer(input: PostgresPeerOptions): SyncPeer {
  const { label, invoke, close } = createPostgresInvoker(input);
  const peer = createRpcPeer(label, invoke, close);
  if (input.url === undefined) return peer;
  const url = input.url;
  return withChangeFeed(peer, (onListening) =>
    listenForChanges({
      url,
      ...(input.ssl !== undefined && { ssl: input.ssl }),
      retryMs: FEED_RETRY_MS,
      connectTimeoutS: connectTimeoutS(input.timeoutMs ?? DEFAULT_TIMEOUT_MS),
      onListening,
    }),
  );
}

/** Pause before a lost change feed listens again: a down server costs one connection attempt per this. */
const FEED_RETRY_MS = 2_000;

/** The transport of {@link createPostgresPeer}, shared with the client applier. */
export function createPostgresInvoker(input: PostgresPeerOptions): {
  label: string;
  invoke: RpcInvoker;
  close(): Promise<void>;
} {
  const options = parseOptions("postgres peer", optionsSchema, input);
  const label =
    options.label ?? `clinic server ${options.url ? describeUrl(options.url) : "(injected client)"}`;
  const injected = options.sql;
  // A postgres.Sql is itself a function: what tells an instance from a factory is its methods.
  const instance = isClient(injected) ? injected : undefined;
  const factory: (() => PostgresClient) | undefined =
    typeof injected === "function" && instance === undefined
      ? (injected as () => PostgresClient)
      : options.url !== undefined
        ? () =>
            postgres(options.url as string, {
              ...sessionConnection(session),
              ...(options.ssl !== undefined && { ssl: options.ssl }),
              max: options.max,
              connect_timeout: connectTimeoutS(options.timeoutMs),
              idle_timeout: 60,
              // The driver would wait up to 20 s between reconnects; the engine paces retries itself.
              backoff: () => 0,
              onnotice: () => {},
              // The driver's array-type lookup runs on a promise nobody awaits: a connection reset
              // mid-lookup becomes an unhandled rejection that kills the daemon. The peer exchanges
              // jsonb and needs no array types.
              fetch_types: false,
            }) as unknown as PostgresClient
        : undefined;
  let live: PostgresClient | undefined = instance;
  let session: string | undefined;
  let closed = false;

  const current = (): PostgresClient => {
    const next = options.session?.();
    if (factory !== undefined && live !== undefined && next !== session) {
      // Another person, or a renewed session: calls in flight finish as whom they started. The old
      // client ends a macrotask later, so a call that took it in this tick still gets its query sent.
      const stale = live;
      live = undefined;
      setImmediate(() => stale.end({ timeout: options.timeoutMs / 1000 }).catch(() => {}));
    }
    session = next;
    live ??= (factory as () => PostgresClient)();
    return live;
  };
  const discard = (stale: PostgresClient) => {
    if (!factory || live !== stale) return;
    live = undefined;
    stale.end({ timeout: 0 }).catch(() => {});
  };

  /**
   * Sends the cancel request of a statement, whatever becomes of it. The driver's `query.cancel()`
   * returns null, not the request's promise (postgres 3.4: `this.canceller(this), this.canceller =
   * null`), so a cancel connection that fails (ECONNRESET on a cut link) rejects with nobody to
   * catch it, an unhandled rejection that stops the process. The canceller is called here instead,
   * and its outcome ignored: the deadline already failed the call.
   */
  const cancelQuietly = (query: PostgresQuery) => {
    const inner = query as unknown as { canceller?: ((q: unknown) => Promise<unknown>) | null };
    if (typeof inner.canceller !== "function") {
      Promise.resolve(query.cancel()).catch(() => {});
      return;
    }
    const request = inner.canceller(query);
    inner.canceller = null;
    request.catch(() => {});
  };

  const invoke: RpcInvoker = async (fn, args, callOptions?: CallOptions) => {
    if (closed) throw new CvError("unavailable", `[sync-engine] the peer for ${label} is closed`);
    const client = current();
    const { text, values } = statement(fn, args as Readonly<Record<string, unknown>>);
    let query: PostgresQuery | undefined;
    try {
      const rows = await withDeadline(`[sync-engine] ${label} ${fn}`, callOptions, options.timeoutMs, () => {
        query = client.unsafe(text, values, { prepare: true });
        return Promise.resolve(query);
      });
      return SET_RPCS.has(fn) ? rows.map((row) => row.r) : (rows[0]?.r ?? null);
    } catch (error) {
      // Deadline or caller abort: stop the statement on the server (an apply then rolls back unless
      // it already committed; either way it is whole). Only a missed deadline condemns the pool.
      if (isCvError(error, "timeout") || isCvError(error, "unavailable")) {
        if (query) cancelQuietly(query);
      }
      if (isCvError(error, "timeout") || isConnectionFailure(error)) discard(client);
      throw toCvError(error, label, fn);
    }
  };

  const close = async () => {
    if (closed) return;
    closed = true;
    const last = live;
    live = undefined;
    if (factory && last) await last.end({ timeout: 5 }).catch(() => {});
  };
  return { label, invoke, close };
}
