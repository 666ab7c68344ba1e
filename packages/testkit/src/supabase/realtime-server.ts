/**
 * Supabase Realtime's Broadcast from the database, at `<url>/realtime/v1/websocket`: the upgrade
 * checked as Supabase's gateway and Realtime's `UserSocket.connect` check it, one
 * {@link RealtimeConnection} per socket, and every committed row of `realtime.messages` fetched
 * (on the trigger's NOTIFY) and handed to the sockets joined on its topic.
 */
import type { IncomingMessage } from "node:http";
import { STATUS_CODES } from "node:http";
import type { Duplex } from "node:stream";
import postgres from "postgres";
import { WebSocketServer } from "ws";
import { ApiError } from "./errors.js";
import { authenticate, type ProjectKeys } from "./jwt.js";
import { RealtimeConnection } from "./realtime-connection.js";
import { negotiateVsn } from "./realtime-protocol.js";
import { ensureMessagePartitions, MESSAGES_CHANNEL } from "./realtime-shape.js";

export interface RealtimeOptions {
  /** The superuser's URL, as Realtime connects as `supabase_admin`. */
  readonly databaseUrl: string;
  readonly keys: ProjectKeys;
  /** Realtime's `CHANNEL_ERROR_BACKOFF_MS`: a refused join is answered after this long. */
  readonly channelErrorBackoffMs: number;
  readonly log: (line: string) => void;
}

export interface Realtime {
  /** Answers an HTTP upgrade request on the gateway's port: the WebSocket, or a refusal. */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Closes every socket (1012 Service Restart) and the database connections. Idempotent. */
  close(): Promise<void>;
}

export const REALTIME_PREFIX = "/realtime/v1";
const WEBSOCKET_PATH = `${REALTIME_PREFIX}/websocket`;
/** Realtime's WebSocket `max_frame_size`. */
const MAX_FRAME_BYTES = 5_000_000;
/** Hosted Realtime's janitor re-creates the coming days' partitions on a timer too. */
const PARTITION_INTERVAL_MS = 60 * 60 * 1000;

interface MessageRow {
  topic: string;
  event: string | null;
  private: boolean | null;
  payload: string | null;
}

/** An HTTP answer instead of the upgrade; a body is JSON. */
function refuse(socket: Duplex, status: number, body = "") {
  const type = body === "" ? "" : "Content-Type: application/json; charset=utf-8\r\n";
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\n${type}` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}

/**
 * What a plain HTTP request under `/realtime/v1` gets: the WebSocket path needs an upgrade, and
 * Realtime's REST API (`api/broadcast`, what `channel.httpSend()` calls) is not served.
 */
export function answerRealtimeHttp(path: string): { status: number; body: string } {
  if (path === WEBSOCKET_PATH) {
    return { status: 400, body: '{"error":"/realtime/v1/websocket answers WebSocket upgrades only"}' };
  }
  const error = `${path} is not served by the local Realtime: only the WebSocket at ${WEBSOCKET_PATH} (Broadcast from the database) is`;
  return { status: 501, body: JSON.stringify({ error }) };
}

function header(request: IncomingMessage, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** The `x-` headers Phoenix hands Realtime as `x_headers`, which policies read as `request.headers`. */
function xHeaders(request: IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(request.headers)) {
    if (name.startsWith("x-") && value !== undefined)
      headers[name] = Array.isArray(value) ? value.join(", ") : value;
  }
  return headers;
}

/** Starts listening for `realtime.messages` and ensures today's partitions exist. */
export async function startRealtime(options: RealtimeOptions): Promise<Realtime> {
  const { log } = options;
  const sql = postgres(options.databaseUrl, { max: 4, connect_timeout: 5, onnotice: () => {} });
  const connections = new Set<RealtimeConnection>();
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME_BYTES });
  const context = { sql, keys: options.keys, channelErrorBackoffMs: options.channelErrorBackoffMs, log };
  let deliveries = Promise.resolve();

  const deliver = async (id: string) => {
    const [row] = await sql<MessageRow[]>`
      select topic, event, private, payload::text as payload from realtime.messages where id = ${id}`;
    if (!row) return;
    const { topic, event, payload } = row;
    if (event === null || row.private === null || payload === null) {
      log("[testkit] realtime: a realtime.messages row without event, private or payload is not broadcast");
      return;
    }
    for (const connection of connections)
      connection.deliver(topic, row.private, { event, payloadJson: payload, id });
  };
  const ensurePartitions = () =>
    ensureMessagePartitions(sql).catch((error: unknown) =>
      log(`[testkit] realtime: could not create realtime.messages partitions: ${(error as Error).message}`),
    );
  let partitionTimer: NodeJS.Timeout | undefined;
  try {
    await ensureMessagePartitions(sql);
    // Rows arrive in commit order; each is fetched and sent before the next, so they leave in it.
    await sql.listen(MESSAGES_CHANNEL, (id) => {
      deliveries = deliveries
        .then(() => deliver(id))
        .catch((error: unknown) =>
          log(`[testkit] realtime: could not broadcast a message: ${(error as Error).message}`),
        );
    });
    partitionTimer = setInterval(ensurePartitions, PARTITION_INTERVAL_MS);
    partitionTimer.unref();
  } catch (error) {
    await sql.end({ timeout: 1 });
    throw error;
  }

  let closed: Promise<void> | undefined;
  const upgrade = async (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    const url = new URL(request.url ?? "/", "http://localhost");
    if (url.pathname !== WEBSOCKET_PATH) {
      refuse(socket, 404, '{"message":"no Route matched with those values"}');
      return;
    }
    // Supabase's gateway checks the apikey before Realtime sees the request, as for /rest/v1.
    const apikey = header(request, "apikey") ?? url.searchParams.get("apikey") ?? "";
    try {
      await authenticate(options.keys, apikey, undefined);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      refuse(socket, error.status, JSON.stringify(error));
      return;
    }
    // Phoenix answers a transport version it does not serve with an empty 403.
    const vsn = negotiateVsn(url.searchParams.get("vsn"));
    if (vsn === undefined) {
      refuse(socket, 403);
      return;
    }
    if (closed !== undefined) {
      socket.destroy();
      return;
    }
    wss.handleUpgrade(request, socket, head, (ws) => {
      const connection = new RealtimeConnection(ws, vsn, apikey, xHeaders(request), context);
      connections.add(connection);
      ws.once("close", () => connections.delete(connection));
    });
  };

  return {
    handleUpgrade(request, socket, head) {
      // A client that goes away mid-upgrade must not crash the gateway with an unhandled error.
      socket.on("error", () => socket.destroy());
      if (closed !== undefined) socket.destroy();
      else {
        upgrade(request, socket, head).catch((error: unknown) => {
          log(`[testkit] realtime: internal error on upgrade ${(error as Error).stack ?? String(error)}`);
          socket.destroy();
        });
      }
    },
    close() {
      closed ??= (async () => {
        clearInterval(partitionTimer);
        await Promise.all([...connections].map((connection) => connection.close()));
        await deliveries;
        await sql.end({ timeout: 5 });
      })();
      return closed;
    },
  };
}
