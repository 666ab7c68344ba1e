/**
 * What the gateway tells a bench about its traffic, through `node:diagnostics_channel` in the
 * gateway's process: a bench counts what each caller costs the cloud without the gateway keeping
 * counts nobody reads. Nothing is computed while no one subscribes.
 */
import { channel } from "node:diagnostics_channel";
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import type { FastifyReply, FastifyRequest } from "fastify";

/**
 * Where the gateway publishes a {@link GatewayRequestRecord} for each answered HTTP request
 * (`subscribe(GATEWAY_REQUEST_CHANNEL, onRecord)`). Subscribe before clients connect: the first
 * answer on a connection opened earlier would count every byte the connection carried before it.
 */
export const GATEWAY_REQUEST_CHANNEL = "cv-local-supabase:request";

/**
 * Where the gateway publishes a {@link GatewayUpgradeRecord} for each WebSocket upgrade (Realtime),
 * before Realtime takes the socket.
 */
export const GATEWAY_UPGRADE_CHANNEL = "cv-local-supabase:upgrade";

/** One answered request: never a header's or body's content, nor the query string (filters hold values). */
export interface GatewayRequestRecord {
  readonly method: string;
  /** Without the query string, e.g. `/rest/v1/rpc/cv_sync_pull`. */
  readonly path: string;
  readonly status: number;
  /**
   * Who called: the `sub` of the bearer token (a user's id), else its `role` (`anon`,
   * `service_role`), else the same of the `apikey` header; null without either. Read from the
   * token without verifying it: the request's own handling verifies it (401 when it refused it).
   */
  readonly caller: string | null;
  /** Bytes the connection read since its previous answer: request line, headers and body. */
  readonly bytesIn: number;
  /** Bytes the connection wrote for this answer: status line, headers and body. */
  readonly bytesOut: number;
}

/** One WebSocket upgrade: `socket.bytesRead`/`bytesWritten` count the connection while it is open, and keep their totals after. */
export interface GatewayUpgradeRecord {
  /** Without the query string, e.g. `/realtime/v1/websocket`. */
  readonly path: string;
  readonly socket: Duplex & { readonly bytesRead: number; readonly bytesWritten: number };
}

const requestChannel = channel(GATEWAY_REQUEST_CHANNEL);
const upgradeChannel = channel(GATEWAY_UPGRADE_CHANNEL);

const pathOf = (url: string | undefined) => (url ?? "").split("?", 1)[0] ?? "";

/** The `sub` (else `role`) of the bearer token, else of the apikey; null without either. */
function callerOf(request: FastifyRequest): string | null {
  const bearer = /^Bearer (\S+)$/i.exec(request.headers.authorization ?? "")?.[1];
  const apikey = request.headers.apikey;
  const payload = (bearer ?? (typeof apikey === "string" ? apikey : "")).split(".")[1];
  if (payload === undefined) return null;
  try {
    const claims = JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as Record<string, unknown>;
    const caller = claims.sub ?? claims.role;
    return typeof caller === "string" ? caller : null;
  } catch {
    return null;
  }
}

/** Each keep-alive connection's byte counts at its previous answer. */
const answered = new WeakMap<object, { read: number; written: number }>();

/** Publishes the answer to `request` (once it is sent) when someone subscribes. */
export function publishAnswer(request: FastifyRequest, reply: FastifyReply): void {
  if (!requestChannel.hasSubscribers) return;
  const socket = request.raw.socket;
  const before = answered.get(socket) ?? { read: 0, written: 0 };
  const now = { read: socket.bytesRead, written: socket.bytesWritten };
  answered.set(socket, now);
  const record: GatewayRequestRecord = {
    method: request.method,
    path: pathOf(request.raw.url),
    status: reply.statusCode,
    caller: callerOf(request),
    bytesIn: now.read - before.read,
    bytesOut: now.written - before.written,
  };
  requestChannel.publish(record);
}

/** Publishes an upgrade when someone subscribes. */
export function publishUpgrade(request: IncomingMessage, socket: Duplex): void {
  if (!upgradeChannel.hasSubscribers) return;
  const record: GatewayUpgradeRecord = {
    path: pathOf(request.url),
    socket: socket as GatewayUpgradeRecord["socket"],
  };
  upgradeChannel.publish(record);
}
