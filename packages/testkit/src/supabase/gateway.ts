/**
 * The HTTP side of the local Supabase: a fastify server answering under
 * `/rest/v1` as Supabase's gateway + PostgREST would, under `/auth/v1` as
 * Supabase Auth would, with CORS, and upgrading `/realtime/v1/websocket` to
 * Supabase Realtime's Broadcast from the database.
 */
import { gzipSync } from "node:zlib";
import Fastify, { type FastifyReply, type FastifyRequest } from "fastify";
import postgres from "postgres";
import type { NewUser } from "./auth-admin.js";
import { type AuthServer, createAuthServer } from "./auth-server.js";
import type { UserRow } from "./auth-users.js";
import { CatalogCache, loadCatalog } from "./catalog.js";
import { ApiError, describeInternal, GatewayError, internalError } from "./errors.js";
import { publishAnswer, publishUpgrade } from "./gateway-stats.js";
import { handleRest, type RestRequest } from "./handler.js";
import { answerRealtimeHttp, REALTIME_PREFIX, type Realtime, startRealtime } from "./realtime-server.js";
import { EXPOSED_SCHEMAS } from "./request-headers.js";
import type { SigningKey } from "./signing-key.js";

export interface GatewayOptions {
  /** Connection URL of the `authenticator` role (not a superuser), as PostgREST connects. */
  readonly databaseUrl: string;
  /** Legacy HS256 secret: the anon and service_role keys. */
  readonly jwtSecret: string;
  /** ES256 key that signs user access tokens; both verify at the REST API. */
  readonly signingKey: SigningKey;
  readonly auth: {
    /** Connection URL of `supabase_auth_admin`, as Supabase Auth connects. */
    readonly databaseUrl: string;
    readonly jwtExpirySeconds: number;
    readonly refreshTokenReuseIntervalSeconds: number;
  };
  readonly realtime: {
    /** The superuser's URL: Realtime connects as `supabase_admin`. */
    readonly databaseUrl: string;
    /** Realtime's `CHANNEL_ERROR_BACKOFF_MS`: a refused channel join is answered after this long. */
    readonly channelErrorBackoffMs: number;
  };
  /** Default: a free port. */
  readonly port?: number;
  /** Supabase's `db-max-rows`; default 1000, null for no cap. */
  readonly maxRows?: number | null;
  /** Default 10. */
  readonly poolSize?: number;
  /** Receives operational lines (never request data). Default: stderr. */
  readonly log?: (line: string) => void;
}

export interface Gateway {
  /** `http://127.0.0.1:<port>`; the REST API is under `/rest/v1`, Realtime under `/realtime/v1`. */
  readonly url: string;
  readonly port: number;
  /** Re-reads the schema cache; settles once DDL committed before the call is visible. */
  reloadSchema(): Promise<void>;
  /** Creates a user as Auth's admin API does. */
  createUser(user: NewUser): Promise<UserRow>;
  /** Closes the server (including keep-alive and Realtime sockets) and the database pools. Idempotent. */
  close(): Promise<void>;
}

const EXPOSED_HEADERS =
  "Content-Encoding, Content-Location, Content-Range, Content-Type, Date, Location, Server, Transfer-Encoding, Range-Unit";
const ALLOWED_METHODS = "GET, POST, PATCH, PUT, DELETE, OPTIONS";
const REST_PREFIX = "/rest/v1";
const AUTH_PREFIX = "/auth/v1";

function corsHeaders(request: FastifyRequest): Record<string, string> {
  if (request.headers.origin === undefined) return {};
  return { "Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": EXPOSED_HEADERS };
}

function toRestRequest(request: FastifyRequest, path: string, search: string): RestRequest {
  let segments: string[];
  try {
    segments = path.slice(REST_PREFIX.length).split("/").slice(1).map(decodeURIComponent);
  } catch {
    throw new ApiError(404, "PGRST125", "Invalid path specified in request URL");
  }
  return {
    method: request.method,
    segments,
    query: [...new URLSearchParams(search)],
    headers: request.headers,
    body: typeof request.body === "string" ? request.body : undefined,
    ...(Buffer.isBuffer(request.body) && { bytes: request.body }),
  };
}

/**
 * Supabase's API gateway (Envoy) compresses what it answers for a client that accepts gzip, as
 * Envoy's compressor does by default: a body of at least 30 bytes, zlib's default level, a 4 KB
 * window. supabase-js (fetch) accepts it and inflates it without being asked.
 */
const GZIP_MIN_BYTES = 30;
const GZIP_WINDOW_BITS = 12;

/** Whether `accept-encoding` accepts gzip (listed, and not with q=0). */
function acceptsGzip(header: string | undefined): boolean {
  return (header ?? "")
    .split(",")
    .some((part) => /^\s*(gzip|\*)\s*(;\s*q=(?!0(\.0*)?\s*$)[\d.]+\s*)?$/i.test(part));
}

function send(reply: FastifyReply, status: number, headers: Record<string, string>, body?: string) {
  reply.code(status).headers(headers);
  if (body === undefined) return reply.send();
  if (Buffer.byteLength(body) < GZIP_MIN_BYTES || !acceptsGzip(reply.request.headers["accept-encoding"]))
    return reply.send(body);
  reply.header("Content-Encoding", "gzip").header("Vary", "Accept-Encoding");
  return reply.send(gzipSync(body, { windowBits: GZIP_WINDOW_BITS }));
}

function sendError(request: FastifyRequest, reply: FastifyReply, error: ApiError) {
  const headers: Record<string, string> = {
    ...corsHeaders(request),
    ...error.headers,
    "Content-Type": "application/json; charset=utf-8",
    ...(!(error instanceof GatewayError) && { "Proxy-Status": `PostgREST; error=${error.body.code}` }),
  };
  return send(
    reply,
    error.status,
    headers,
    request.method === "HEAD" ? undefined : JSON.stringify(error.toJSON()),
  );
}

/** CORS preflight, or PostgREST's answer to a plain OPTIONS. */
function answerOptions(request: FastifyRequest, reply: FastifyReply) {
  const requested = request.headers["access-control-request-headers"];
  return send(reply, 200, {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": ALLOWED_METHODS,
    "Access-Control-Allow-Headers": requested ? `Authorization, ${requested}` : "Authorization",
    "Access-Control-Max-Age": "86400",
    ...(request.headers["access-control-request-method"] === undefined && {
      Allow: "OPTIONS,GET,POST,PATCH,DELETE",
    }),
  });
}

/** Starts the gateway on 127.0.0.1 once the schema cache is loaded. */
export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const pool = postgres(options.databaseUrl, {
    max: options.poolSize ?? 10,
    connect_timeout: 5,
    onnotice: () => {},
  });
  const authPool = postgres(options.auth.databaseUrl, { max: 4, connect_timeout: 5, onnotice: () => {} });
  let url = "";
  const auth: AuthServer = createAuthServer({
    pool: authPool,
    jwtSecret: options.jwtSecret,
    signingKey: options.signingKey,
    issuer: () => `${url}${AUTH_PREFIX}`,
    jwtExpirySeconds: options.auth.jwtExpirySeconds,
    reuseIntervalSeconds: options.auth.refreshTokenReuseIntervalSeconds,
    log,
  });
  const [schema] = EXPOSED_SCHEMAS;
  const catalog = new CatalogCache(() => loadCatalog(pool, schema));
  const app = Fastify({
    logger: false,
    forceCloseConnections: true,
    bodyLimit: 64 * 1024 * 1024,
    exposeHeadRoutes: false,
    // A URL fastify cannot decode never reaches the handler; answer it in PostgREST's shape.
    frameworkErrors: (_error, request, reply) =>
      sendError(request, reply, new ApiError(404, "PGRST125", "Invalid path specified in request URL")),
  });
  try {
    await catalog.reload();
    const reload = () =>
      catalog
        .reload()
        .catch((error: unknown) => log(`[testkit] schema reload failed: ${describeInternal(error)}`));
    // PostgREST's reload channel; Supabase's DDL event trigger notifies it. After the listening
    // connection is re-established (e.g. the database restarted) notifications may have been
    // missed, so the cache is reloaded then too.
    await pool.listen(
      "pgrst",
      (payload) => {
        if (payload === "" || payload === "reload schema") reload();
      },
      reload,
    );
  } catch (error) {
    await Promise.all([pool.end({ timeout: 1 }), authPool.end({ timeout: 1 })]);
    throw error;
  }
  let realtime: Realtime;
  try {
    realtime = await startRealtime({
      databaseUrl: options.realtime.databaseUrl,
      keys: { jwtSecret: options.jwtSecret, signingKey: options.signingKey },
      channelErrorBackoffMs: options.realtime.channelErrorBackoffMs,
      log,
    });
  } catch (error) {
    await Promise.all([pool.end({ timeout: 1 }), authPool.end({ timeout: 1 })]);
    throw error;
  }
  app.server.on("upgrade", (request, socket, head) => {
    publishUpgrade(request, socket);
    realtime.handleUpgrade(request, socket, head);
  });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", { parseAs: "string" }, (_request, body, done) => done(null, body));
  // PostgREST hands such a body, as sent, to a function's single unnamed bytea parameter.
  app.addContentTypeParser("application/octet-stream", { parseAs: "buffer" }, (_request, body, done) =>
    done(null, body),
  );

  const handlerOptions = {
    pool,
    catalog,
    keys: { jwtSecret: options.jwtSecret, signingKey: options.signingKey },
    maxRows: options.maxRows === undefined ? 1000 : options.maxRows,
  };
  app.addHook("onResponse", (request, reply, done) => {
    publishAnswer(request, reply);
    done();
  });
  app.all("/*", async (request, reply) => {
    const [path = "", search = ""] = (request.raw.url ?? "").split(/\?(.*)/s, 2);
    if (request.method === "OPTIONS") return answerOptions(request, reply);
    if (path === AUTH_PREFIX || path.startsWith(`${AUTH_PREFIX}/`)) {
      const answer = await auth.handle({
        method: request.method,
        path: path.slice(AUTH_PREFIX.length),
        query: new URLSearchParams(search),
        headers: request.headers,
        body: typeof request.body === "string" ? request.body : undefined,
      });
      return send(reply, answer.status, { ...answer.headers }, answer.body);
    }
    if (path === REALTIME_PREFIX || path.startsWith(`${REALTIME_PREFIX}/`)) {
      const answer = answerRealtimeHttp(path);
      const headers = { ...corsHeaders(request), "Content-Type": "application/json; charset=utf-8" };
      return send(reply, answer.status, headers, answer.body);
    }
    if (path !== REST_PREFIX && !path.startsWith(`${REST_PREFIX}/`)) {
      // What Supabase's gateway (Kong) says for a path it does not route.
      const headers = { ...corsHeaders(request), "Content-Type": "application/json; charset=utf-8" };
      return send(reply, 404, headers, '{"message":"no Route matched with those values"}');
    }
    try {
      const result = await handleRest(handlerOptions, toRestRequest(request, path, search));
      return send(reply, result.status, { ...corsHeaders(request), ...result.headers }, result.body);
    } catch (error) {
      if (error instanceof ApiError) return sendError(request, reply, error);
      log(`[testkit] local-supabase: internal error ${describeInternal(error)}`);
      return sendError(request, reply, internalError());
    }
  });
  app.setErrorHandler((error: { statusCode?: number; message: string }, request, reply) => {
    // Fastify's own refusals before our handler ran (body too large, broken framing); their
    // messages are fixed texts, never request data.
    const status = error.statusCode ?? 500;
    const known = status >= 400 && status < 500;
    return sendError(
      request,
      reply,
      known ? new ApiError(status, "PGRST102", error.message) : internalError(),
    );
  });

  let address: string;
  try {
    address = await app.listen({ host: "127.0.0.1", port: options.port ?? 0 });
  } catch (error) {
    await Promise.all([pool.end({ timeout: 1 }), authPool.end({ timeout: 1 }), realtime.close()]);
    throw error;
  }
  const port = Number(new URL(address).port);
  url = `http://127.0.0.1:${port}`;
  let closed: Promise<void> | undefined;
  return {
    url,
    port,
    reloadSchema: () => catalog.reload(),
    createUser: (user) => auth.createUser(user),
    close() {
      closed ??= (async () => {
        // Upgraded sockets are no longer the HTTP server's to close: Realtime closes them first.
        await realtime.close();
        await app.close();
        await Promise.all([pool.end({ timeout: 5 }), authPool.end({ timeout: 5 })]);
      })();
      return closed;
    },
  };
}
