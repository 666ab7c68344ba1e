/**
 * One Realtime WebSocket: Phoenix's socket (heartbeats, joins, leaves, unmatched topics) and
 * Realtime's channel (supabase/realtime `lib/realtime_web/channels/realtime_channel.ex`) for
 * Broadcast: join checks, private-channel authorization, token refresh and expiry. Messages are
 * handled one at a time, in order, as Phoenix's socket process does.
 */
import type { Sql } from "postgres";
import { WebSocket } from "ws";
import type { ProjectKeys } from "./jwt.js";
import { readJoinRefusal, readShutdownMessage, refuseBroadcastRead } from "./realtime-authorization.js";
import {
  close,
  type DatabaseBroadcast,
  databaseBroadcast,
  decodeFrame,
  type Frame,
  type InboundMessage,
  push,
  reply,
  type Vsn,
} from "./realtime-protocol.js";
import { checkRealtimeToken, joinRefusal, shutdownMessage } from "./realtime-token.js";

export interface ConnectionContext {
  readonly sql: Sql;
  readonly keys: ProjectKeys;
  /** Realtime's `CHANNEL_ERROR_BACKOFF_MS`: how long a refused join waits before its reply. */
  readonly channelErrorBackoffMs: number;
  readonly log: (line: string) => void;
}

interface JoinedChannel {
  /** `realtime:<topic>`, as joined. */
  readonly topic: string;
  /** Without `realtime:`: what `realtime.send` names and policies see as `realtime.topic()`. */
  readonly subTopic: string;
  readonly joinRef: string | null;
  readonly isPrivate: boolean;
  accessToken: string;
  /** Re-checks the token when it expires (or every 5 minutes), as Realtime's `confirm_token`. */
  confirmTimer: NodeJS.Timeout | undefined;
}

const TOPIC_PREFIX = "realtime:";
const CONFIRM_TOKEN_INTERVAL_MS = 5 * 60 * 1000;

/** FlexibleBoolean: a boolean, or "true"/"false" in any case. */
function flag(value: unknown): boolean {
  return value === true || (typeof value === "string" && value.toLowerCase() === "true");
}

function record(value: unknown): Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : {};
}

export class RealtimeConnection {
  private readonly channels = new Map<string, JoinedChannel>();
  private queue: Promise<void> = Promise.resolve();
  /** Set once the socket closed: a join still checking its token must not register then. */
  private closed = false;

  constructor(
    private readonly ws: WebSocket,
    private readonly vsn: Vsn,
    /** The `apikey` the socket connected with: a join without `access_token` runs as its role. */
    private readonly apikey: string,
    /** The upgrade request's `x-` headers, `request.headers` for policies. */
    private readonly headers: Readonly<Record<string, string>>,
    private readonly context: ConnectionContext,
  ) {
    // With ws's default binaryType ("nodebuffer") every message arrives as one Buffer.
    ws.on("message", (data, isBinary) => this.enqueue(() => this.handle(data as Buffer, isBinary)));
    ws.on("close", () => this.dispose());
    // ws emits the error, then closes: the close handler cleans up.
    ws.on("error", () => {});
  }

  /** Sends a committed `realtime.messages` row to every channel joined on its topic and visibility. */
  deliver(topic: string, isPrivate: boolean, message: DatabaseBroadcast): void {
    for (const channel of this.channels.values()) {
      if (channel.subTopic !== topic || channel.isPrivate !== isPrivate) continue;
      const frame = databaseBroadcast(this.vsn, channel.topic, message);
      if (frame === undefined) {
        this.context.log(
          "[testkit] realtime: a topic or event longer than 255 bytes cannot be framed; message dropped",
        );
      } else this.send(frame);
    }
  }

  /** Closes the socket as a restarting Realtime does (1012 Service Restart); resolves once closed. */
  close(): Promise<void> {
    this.dispose();
    if (this.ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      const kill = setTimeout(() => this.ws.terminate(), 1000);
      this.ws.once("close", () => {
        clearTimeout(kill);
        resolve();
      });
      this.ws.close(1012, "Service Restart");
    });
  }

  private dispose(): void {
    this.closed = true;
    for (const channel of this.channels.values()) clearTimeout(channel.confirmTimer);
    this.channels.clear();
  }

  private enqueue(task: () => Promise<void>): void {
    this.queue = this.queue.then(task).catch((error: unknown) => {
      this.context.log(`[testkit] realtime: internal error ${(error as Error).stack ?? String(error)}`);
    });
  }

  private send(frame: Frame): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(frame);
  }

  private async handle(frame: Buffer, isBinary: boolean): Promise<void> {
    const message = decodeFrame(this.vsn, frame, isBinary);
    if (message === undefined) {
      this.context.log(
        "[testkit] realtime: ignored a frame that is not a Phoenix channel message (MalformedWebSocketMessage)",
      );
      return;
    }
    if (message.topic === "phoenix" && message.event === "heartbeat") {
      this.send(reply(this.vsn, { joinRef: null, ref: message.ref, topic: "phoenix" }, "ok", {}));
      return;
    }
    const joined = this.channels.get(message.topic);
    if (message.event === "phx_join") {
      if (joined) this.end(joined);
      await this.join(message);
    } else if (message.event === "phx_leave") {
      if (joined && message.joinRef !== null && message.joinRef !== joined.joinRef) return;
      this.send(reply(this.vsn, message, "ok", {}));
      if (joined) this.end(joined);
    } else if (!joined) {
      this.send(reply(this.vsn, { ...message, joinRef: null }, "error", { reason: "unmatched topic" }));
    } else if (message.joinRef === null || message.joinRef === joined.joinRef) {
      await this.channelEvent(joined, message);
    }
  }

  private async join(message: InboundMessage): Promise<void> {
    const { topic } = message;
    if (!topic.startsWith(TOPIC_PREFIX)) {
      this.send(reply(this.vsn, { ...message, joinRef: null }, "error", { reason: "unmatched topic" }));
      return;
    }
    const subTopic = topic.slice(TOPIC_PREFIX.length);
    const payload = record(message.payload);
    const config = record(payload.config);
    const isPrivate = flag(config.private);
    const token = this.joinToken(payload);
    const admission = await this.admit(subTopic, config, isPrivate, token);
    if (typeof admission === "string") {
      // Realtime sleeps before every refused join, so a client retrying in a loop cannot flood it.
      await new Promise((resolve) => setTimeout(resolve, this.context.channelErrorBackoffMs));
      this.send(reply(this.vsn, message, "error", { reason: admission }));
      return;
    }
    if (this.closed) return;
    const channel: JoinedChannel = {
      topic,
      subTopic,
      joinRef: message.joinRef,
      isPrivate,
      accessToken: token,
      confirmTimer: undefined,
    };
    this.channels.set(topic, channel);
    this.send(reply(this.vsn, message, "ok", { postgres_changes: [] }));
    this.schedule(channel, admission.exp);
  }

  /** Realtime's `assign_access_token`: `user_token`, else `access_token`, else the apikey. */
  private joinToken(payload: Record<string, unknown>): string {
    const given = payload.access_token ?? payload.user_token;
    if (typeof given === "string" && given.startsWith("sb_")) return this.apikey;
    if (typeof payload.user_token === "string") return payload.user_token;
    if (typeof payload.access_token === "string") return payload.access_token;
    return this.apikey;
  }

  /** The join's checks, in Realtime's order: the token's `exp`, or the error reason. */
  private async admit(
    subTopic: string,
    config: Record<string, unknown>,
    isPrivate: boolean,
    token: string,
  ): Promise<{ exp: number } | string> {
    if (subTopic === "") return "TopicNameRequired: You must provide a topic name";
    // Refused rather than half-served: a join the real server would answer with Presence state
    // or Postgres Changes ids must not look subscribed here.
    if (flag(record(config.presence).enabled)) {
      return "NotImplemented: Presence is not served by the local Realtime; only Broadcast is";
    }
    const changes = Array.isArray(config.postgres_changes) ? config.postgres_changes : [];
    if (changes.some((change) => change !== null)) {
      return "NotImplemented: Postgres Changes are not served by the local Realtime; use Broadcast from the database (realtime.send)";
    }
    const check = await checkRealtimeToken(token, this.context.keys);
    if (!check.ok) return joinRefusal(check.failure);
    if (isPrivate) {
      const refusal = await refuseBroadcastRead(this.context.sql, {
        topic: subTopic,
        claims: check.claims,
        headers: this.headers,
      });
      if (refusal !== null) return readJoinRefusal(refusal, subTopic);
    }
    return { exp: check.exp };
  }

  private async channelEvent(channel: JoinedChannel, message: InboundMessage): Promise<void> {
    if (message.event === "access_token") {
      await this.refreshToken(channel, record(message.payload).access_token);
    } else if (message.event === "broadcast" || message.event === "presence") {
      const what = message.event === "broadcast" ? "Broadcast from clients" : "Presence";
      this.shutdown(
        channel,
        `${what} is not served by the local Realtime: only Broadcast from the database (realtime.send) is`,
      );
    }
    // Anything else is ignored, as Realtime's catch-all handle_in does.
  }

  /** Realtime's `access_token` handler: a new token is checked, and a private channel re-authorized. */
  private async refreshToken(channel: JoinedChannel, token: unknown): Promise<void> {
    if (typeof token !== "string" || token.startsWith("sb_") || token === channel.accessToken) return;
    channel.accessToken = token;
    const check = await checkRealtimeToken(token, this.context.keys);
    if (!check.ok) {
      this.shutdown(channel, shutdownMessage(check.failure));
      return;
    }
    if (channel.isPrivate) {
      const refusal = await refuseBroadcastRead(this.context.sql, {
        topic: channel.subTopic,
        claims: check.claims,
        headers: this.headers,
      });
      if (refusal !== null) {
        this.shutdown(channel, readShutdownMessage(refusal, channel.subTopic));
        return;
      }
    }
    this.schedule(channel, check.exp);
  }

  /** Checks the channel's token and schedules the next check, or ends the channel if it expired. */
  private async confirmToken(channel: JoinedChannel): Promise<void> {
    if (this.channels.get(channel.topic) !== channel) return;
    const check = await checkRealtimeToken(channel.accessToken, this.context.keys);
    if (check.ok) this.schedule(channel, check.exp);
    else this.shutdown(channel, shutdownMessage(check.failure));
  }

  private schedule(channel: JoinedChannel, exp: number): void {
    clearTimeout(channel.confirmTimer);
    const untilExpiry = exp * 1000 - Date.now();
    const delay = Math.max(0, Math.min(CONFIRM_TOKEN_INTERVAL_MS, untilExpiry));
    channel.confirmTimer = setTimeout(() => this.enqueue(() => this.confirmToken(channel)), delay);
    channel.confirmTimer.unref();
  }

  /** Realtime's `shutdown_response`: a `system` error message, then the channel closes. */
  private shutdown(channel: JoinedChannel, message: string): void {
    const payload = { extension: "system", status: "error", message, channel: channel.subTopic };
    this.send(push(this.vsn, channel.joinRef, channel.topic, "system", payload));
    this.end(channel);
  }

  /** Phoenix's `phx_close` for a channel that ended normally. */
  private end(channel: JoinedChannel): void {
    clearTimeout(channel.confirmTimer);
    this.channels.delete(channel.topic);
    this.send(close(this.vsn, channel.joinRef, channel.topic));
  }
}
