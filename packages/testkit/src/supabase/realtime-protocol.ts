/**
 * The Phoenix channel protocol as Supabase Realtime speaks it, in the two serializers a socket
 * negotiates with `vsn` (phoenixframework/phoenix `socket/serializers/v1_json_serializer.ex`,
 * supabase/realtime `lib/realtime_web/socket/v2_serializer.ex`):
 *   - 1.0.0: JSON objects `{topic, event, payload, ref}` (join_ref is read, never written);
 *   - 2.0.0: JSON arrays `[join_ref, ref, topic, event, payload]`, plus binary frames: a client's
 *     broadcast arrives as a "user broadcast push" (kind 3) or a binary push (kind 0), and a
 *     broadcast from the database leaves as a "user broadcast" (kind 4) whose JSON payload is
 *     PostgreSQL's own text of the jsonb.
 */

export type Vsn = "1.0.0" | "2.0.0";

export interface InboundMessage {
  readonly joinRef: string | null;
  readonly ref: string | null;
  readonly topic: string;
  readonly event: string;
  readonly payload: unknown;
}

/** A frame ready for `ws.send`: text (string) or binary (Buffer). */
export type Frame = string | Buffer;

const PUSH = 0;
const USER_BROADCAST_PUSH = 3;
const USER_BROADCAST = 4;
const JSON_ENCODING = 1;

/**
 * Phoenix's serializer negotiation: no `vsn` means 1.0.0; a version matching `~> 1.0.0` or
 * `~> 2.0.0` picks that serializer; anything else is refused (403 on the upgrade).
 */
export function negotiateVsn(vsn: string | null): Vsn | undefined {
  const match = /^(\d+)\.(\d+)\.(\d+)(?:[-+].*)?$/.exec(vsn ?? "1.0.0");
  if (match?.[2] !== "0") return undefined;
  if (match[1] === "1") return "1.0.0";
  if (match[1] === "2") return "2.0.0";
  return undefined;
}

function refOf(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  return typeof value === "string" ? value : JSON.stringify(value);
}

function message(joinRef: unknown, ref: unknown, topic: unknown, event: unknown, payload: unknown) {
  if (typeof topic !== "string" || typeof event !== "string") return undefined;
  return { joinRef: refOf(joinRef), ref: refOf(ref), topic, event, payload };
}

/** The header of a binary push (kind 0) or user broadcast push (kind 3); the payload is not needed. */
function decodeBinary(frame: Buffer): InboundMessage | undefined {
  const kind = frame[0];
  const sizes = kind === PUSH ? 4 : kind === USER_BROADCAST_PUSH ? 6 : 0;
  if (sizes === 0 || frame.length < 1 + sizes) return undefined;
  // Both start with the sizes of join_ref, ref, topic and the (user) event.
  const lengths = [...frame.subarray(1, 5)];
  let offset = 1 + sizes;
  const fields = lengths.map((length) => {
    const field = frame.subarray(offset, offset + length).toString("utf8");
    offset += length;
    return field;
  });
  const [joinRef = "", ref = "", topic = "", event = ""] = fields;
  return {
    joinRef: joinRef || null,
    ref: ref || null,
    topic,
    event: kind === PUSH ? event : "broadcast",
    payload: null,
  };
}

/** Decodes one frame; undefined for a malformed one (Realtime logs and ignores those). */
export function decodeFrame(vsn: Vsn, frame: Buffer, isBinary: boolean): InboundMessage | undefined {
  if (isBinary) return vsn === "2.0.0" ? decodeBinary(frame) : undefined;
  let decoded: unknown;
  try {
    decoded = JSON.parse(frame.toString("utf8"));
  } catch {
    return undefined;
  }
  if (vsn === "2.0.0") {
    if (!Array.isArray(decoded) || decoded.length < 5) return undefined;
    const [joinRef, ref, topic, event, payload] = decoded as unknown[];
    return message(joinRef, ref, topic, event, payload);
  }
  if (typeof decoded !== "object" || decoded === null || Array.isArray(decoded)) return undefined;
  const fields = decoded as Record<string, unknown>;
  if (!("payload" in fields) || !("ref" in fields)) return undefined;
  return message(fields.join_ref, fields.ref, fields.topic, fields.event, fields.payload);
}

interface Outbound {
  readonly joinRef: string | null;
  readonly ref: string | null;
  readonly topic: string;
  readonly event: string;
  readonly payload: unknown;
}

function encode(vsn: Vsn, out: Outbound): Frame {
  if (vsn === "2.0.0") return JSON.stringify([out.joinRef, out.ref, out.topic, out.event, out.payload]);
  return JSON.stringify({ topic: out.topic, event: out.event, payload: out.payload, ref: out.ref });
}

/** `phx_reply`: `{status, response}` to the message with `ref`. */
export function reply(
  vsn: Vsn,
  to: Pick<InboundMessage, "joinRef" | "ref" | "topic">,
  status: "ok" | "error",
  response: object,
): Frame {
  return encode(vsn, { ...to, event: "phx_reply", payload: { status, response } });
}

/** A message the server pushes on a joined channel (no ref). */
export function push(vsn: Vsn, joinRef: string | null, topic: string, event: string, payload: object): Frame {
  return encode(vsn, { joinRef, ref: null, topic, event, payload });
}

/** `phx_close`: the channel ended normally; Phoenix sends the join ref as both refs. */
export function close(vsn: Vsn, joinRef: string | null, topic: string): Frame {
  return encode(vsn, { joinRef, ref: joinRef, topic, event: "phx_close", payload: {} });
}

export interface DatabaseBroadcast {
  readonly event: string;
  /** PostgreSQL's text of the jsonb payload, passed through as is. */
  readonly payloadJson: string;
  readonly id: string;
}

/**
 * A broadcast from the database on the joined `topic`. Undefined when a field outgrows the
 * 255-byte frame header (the real server cannot encode it either and drops the message).
 */
export function databaseBroadcast(vsn: Vsn, topic: string, message: DatabaseBroadcast): Frame | undefined {
  const meta = JSON.stringify({ id: message.id });
  if (vsn === "1.0.0") {
    const payload = `{"event":${JSON.stringify(message.event)},"meta":${meta},"payload":${message.payloadJson},"type":"broadcast"}`;
    return `{"topic":${JSON.stringify(topic)},"event":"broadcast","payload":${payload},"ref":null}`;
  }
  const fields = [topic, message.event, meta].map((field) => Buffer.from(field, "utf8"));
  if (fields.some((field) => field.length > 255)) return undefined;
  const [topicBytes, eventBytes, metaBytes] = fields as [Buffer, Buffer, Buffer];
  const header = Buffer.from([
    USER_BROADCAST,
    topicBytes.length,
    eventBytes.length,
    metaBytes.length,
    JSON_ENCODING,
  ]);
  return Buffer.concat([header, ...fields, Buffer.from(message.payloadJson, "utf8")]);
}
