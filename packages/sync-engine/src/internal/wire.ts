import { CvError, SYNCED_TABLES, type TableName } from "@centrovision/core";
import * as z from "zod";
import type {
  ApplyResult,
  AuditEvent,
  AuditVerification,
  ClinicKey,
  NodeInfo,
  PeerState,
  PullPage,
  PurgeResult,
  SnapshotApplyResult,
  SnapshotPage,
  SnapshotRow,
  SyncConflict,
  SyncCursor,
} from "../sync-types.js";

/*
 * Schemas of what the cv_sync_* functions return. Replies come from another machine (over the
 * internet for the cloud), so they are parsed here, once, before the engine trusts them. Rows
 * inside changes are checked only for being objects, and a snapshot page's row texts only for
 * being strings: the engine passes them through untouched and the target database, whose schema
 * the fingerprint vouches for, is what validates every column.
 */

const HLC = /^\d{15}\.\d{10}\.[0-9a-f-]{36}$/;
const id = () => z.guid().toLowerCase();
const count = z.int().nonnegative();
const table = z.enum(SYNCED_TABLES as readonly [TableName, ...TableName[]]);
const rowObject = z.custom<Readonly<Record<string, unknown>>>(
  (value) => typeof value === "object" && value !== null && !Array.isArray(value),
  "must be a row object",
);
const fingerprint = z.record(z.string(), z.string());

const cursorSchema = z.object({ txid: count, seq: count });

/** PostgREST renders bigint as a JSON number; a direct connection may give its text form. */
const bigintSchema = z.union([
  count,
  z
    .string()
    .regex(/^\d{1,15}$/)
    .transform(Number),
]);

const identity = {
  node_id: id(),
  epoch: id(),
  fingerprint,
  now: z.string(),
};

const nodeSchema = z
  .object({
    ...identity,
    node_name: z.string(),
    max_txid: count,
    open_conflicts: bigintSchema,
    quarantined: bigintSchema.optional(),
    scope: z.array(id()).nullable().optional(),
    apply_formats: z.array(z.string()).optional(),
  })
  .transform(
    (n): NodeInfo => ({
      nodeId: n.node_id,
      nodeName: n.node_name,
      epoch: n.epoch,
      fingerprint: n.fingerprint,
      now: n.now,
      maxTxid: n.max_txid,
      openConflicts: n.open_conflicts,
      quarantined: n.quarantined ?? 0,
      ...(n.scope !== undefined && { scope: n.scope }),
      ...(n.apply_formats !== undefined && { applyFormats: n.apply_formats }),
    }),
  );

/** Loose: a field the SQL adds later still reaches cv_sync_apply. */
const changeSchema = z.looseObject({
  table,
  row_id: id(),
  op: z.enum(["upsert", "delete", "evict"]),
  row: rowObject,
  version: id(),
  base_version: id().nullable(),
  origin: id(),
  hlc: z.string().regex(HLC),
  changed_columns: z.array(z.string()).nullable(),
  resolves: id().nullable().optional(),
  txid: count,
  seq: count,
});

/** `cv_sync_pull`'s set, as PostgREST (or the direct peer) hands it over: [header, chunk of changes, …]. */
const pullSchema = z
  .tuple([z.object({ ...identity, cursor: cursorSchema, has_more: z.boolean() })], z.array(changeSchema))
  .transform(
    ([p, ...chunks]): PullPage => ({
      source: { nodeId: p.node_id, epoch: p.epoch, fingerprint: p.fingerprint },
      now: p.now,
      changes: chunks.flat(),
      cursor: p.cursor,
      hasMore: p.has_more,
    }),
  );

const applyFields = {
  applied: count,
  skipped: count,
  conflicts: count,
  quarantined: count.optional(),
  evicted: count.optional(),
};

const applySchema = z
  .object({ status: z.enum(["applied", "duplicate"]), ...applyFields })
  .transform((a): ApplyResult => a);

const progressSchema = z
  .object({ table, after_id: id().nullable(), done: z.boolean() })
  .transform((p) => ({ table: p.table, afterId: p.after_id, done: p.done }));

const snapshotApplySchema = z
  .object({ status: z.enum(["applied", "duplicate"]), ...applyFields, progress: progressSchema })
  .transform((a): SnapshotApplyResult => a);

const peerStateSchema = z
  .object({
    cursor: cursorSchema,
    epoch: id().nullable(),
    catchup_until: cursorSchema.nullable(),
    snapshot_progress: progressSchema.nullable(),
    acked: cursorSchema.nullable().optional(),
  })
  .transform(
    (s): PeerState => ({
      cursor: s.cursor,
      epoch: s.epoch,
      catchupUntil: s.catchup_until,
      snapshotProgress: s.snapshot_progress,
      acked: s.acked ?? null,
    }),
  );

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function isSnapshotRow(value: unknown): boolean {
  return (
    Array.isArray(value) &&
    value.length === 4 &&
    typeof value[0] === "string" &&
    UUID.test(value[0]) &&
    typeof value[1] === "string" &&
    UUID.test(value[1]) &&
    typeof value[2] === "string" &&
    HLC.test(value[2]) &&
    typeof value[3] === "string"
  );
}

/**
 * A chunk of a page's rows, checked in one loop rather than by a schema per row: a page holds
 * thousands, and the target checks each again, parsing its text as the table's row.
 */
const snapshotChunk = z.custom<SnapshotRow[]>(
  (value) => Array.isArray(value) && value.every(isSnapshotRow),
  "must be [id, version, hlc, row text] items",
);

const snapshotHeader = z.object({
  ...identity,
  table,
  after_id: id().nullable(),
  last_id: id().nullable(),
  format: z.literal("row_text"),
  columns: z.array(z.string()).min(1),
  has_more: z.boolean(),
  cursor: cursorSchema,
});

/** `cv_sync_snapshot`'s set, as PostgREST (or the direct peer) hands it over: [header, chunk of rows, …]. */
const snapshotSchema = z.tuple([snapshotHeader], snapshotChunk).transform(
  ([s, ...chunks]): SnapshotPage => ({
    source: { nodeId: s.node_id, epoch: s.epoch, fingerprint: s.fingerprint },
    now: s.now,
    table: s.table,
    afterId: s.after_id,
    lastId: s.last_id,
    columns: s.columns,
    rows: chunks.flat(),
    hasMore: s.has_more,
    cursor: s.cursor,
  }),
);

/**
 * A `cv_sync_pull` or `cv_sync_snapshot` reply of a node whose sql/ functions are older than the
 * engine's: the page as one object (its `changes` or `rows` inside it), not the set [header,
 * chunk, …]. That node needs the migrations, not a retry.
 */
export function isOlderPageReply(reply: unknown, items: "changes" | "rows"): boolean {
  return (
    typeof reply === "object" &&
    reply !== null &&
    !Array.isArray(reply) &&
    Array.isArray((reply as Record<string, unknown>)[items])
  );
}

/**
 * A `cv_sync_pull` or `cv_sync_snapshot` set whose header promises an end marker (an empty chunk
 * last) and that arrived without it: the API cut the set short (PostgREST's db-max-rows, which a
 * Supabase project's owner may lower below what a page needs). Applied, the cut page would move
 * the cursor past the changes it lost.
 */
export function isCutShort(reply: unknown): boolean {
  if (!Array.isArray(reply) || reply.length === 0) return false;
  const header: unknown = reply[0];
  if (
    typeof header !== "object" ||
    header === null ||
    (header as Record<string, unknown>).end_marker !== true
  ) {
    return false;
  }
  const last: unknown = reply[reply.length - 1];
  return reply.length < 2 || !Array.isArray(last) || last.length !== 0;
}

const conflictSchema = z
  .object({
    id: id(),
    table_name: table,
    row_id: id(),
    local_row: rowObject.nullable(),
    remote_row: rowObject.nullable(),
    local_version: id().nullable(),
    remote_version: id().nullable(),
    local_hlc: z.string().nullable(),
    remote_hlc: z.string().nullable(),
    local_origin: id().nullable(),
    remote_origin: id().nullable(),
    winner: z.enum(["local", "remote", "merged"]),
    policy: z.string(),
    reason: z.string(),
    columns: z.array(z.string()).nullable(),
    status: z.enum(["open", "resolved"]),
    resolved_at: z.string().nullable(),
    resolved_by: z.string().nullable(),
    created_at: z.string(),
  })
  .transform(
    (c): SyncConflict => ({
      id: c.id,
      table: c.table_name,
      rowId: c.row_id,
      localRow: c.local_row,
      remoteRow: c.remote_row,
      localVersion: c.local_version,
      remoteVersion: c.remote_version,
      localHlc: c.local_hlc,
      remoteHlc: c.remote_hlc,
      localOrigin: c.local_origin,
      remoteOrigin: c.remote_origin,
      winner: c.winner,
      policy: c.policy,
      reason: c.reason,
      columns: c.columns,
      status: c.status,
      resolvedAt: c.resolved_at,
      resolvedBy: c.resolved_by,
      createdAt: c.created_at,
    }),
  );

const resolveSchema = z.object({ id: id(), version: id() });

const purgeSchema = z
  .object({ log_entries: count, tombstones: count, more: z.boolean(), log_size: count.nullable() })
  .transform(
    (p): PurgeResult => ({
      logEntries: p.log_entries,
      tombstones: p.tombstones,
      more: p.more,
      logSize: p.log_size,
    }),
  );

const resetSchema = z.object({ reset: z.boolean() }).transform((r) => r.reset);

const initSchema = z
  .object({ node_id: id(), node_name: z.string(), epoch: id() })
  .transform((n) => ({ nodeId: n.node_id, nodeName: n.node_name, epoch: n.epoch }));

const clinicKeySchema = z
  .object({ key_id: id(), key: z.string().regex(/^[0-9a-f]{64,128}$/) })
  .transform((k): ClinicKey => ({ keyId: k.key_id, key: k.key }));

const authorSchema = z.looseObject({ user: id(), node: id() });
const auditEventSchema = z
  .object({
    at: z.string(),
    action: z.enum(["insert", "update", "delete", "open"]),
    table: z.string(),
    row_id: id(),
    patient_id: id().nullable(),
    version: id().nullable(),
    changed_columns: z.array(z.string()).nullable(),
    author: authorSchema.nullable(),
    node: id(),
    position: count.nullable(),
  })
  .transform(
    (e): AuditEvent => ({
      at: e.at,
      action: e.action,
      table: e.table,
      rowId: e.row_id,
      patientId: e.patient_id,
      version: e.version,
      changedColumns: e.changed_columns,
      author: e.author as AuditEvent["author"],
      node: e.node,
      position: e.position,
    }),
  );
const auditVerifySchema = z
  .object({
    events: count,
    sealed: count,
    unsealed: count,
    ok: z.boolean(),
    broken_at: count.nullable(),
    head: count,
  })
  .transform(
    (v): AuditVerification => ({
      events: v.events,
      sealed: v.sealed,
      unsealed: v.unsealed,
      ok: v.ok,
      brokenAt: v.broken_at,
      head: v.head,
    }),
  );

export const replySchemas = {
  auditEvents: z.array(auditEventSchema),
  sealedAudit: z.array(z.looseObject({ event_id: id(), node_id: id(), position: count, hash: z.string() })),
  auditVerify: auditVerifySchema,
  clinicKey: clinicKeySchema,
  disabledUsers: z.array(id()),
  init: initSchema,
  node: nodeSchema,
  pull: pullSchema,
  apply: applySchema,
  applySnapshot: snapshotApplySchema,
  cursor: peerStateSchema,
  pending: bigintSchema,
  snapshot: snapshotSchema,
  conflicts: z.array(conflictSchema),
  resolve: resolveSchema,
  purge: purgeSchema,
  reset: resetSchema,
  count: bigintSchema,
} as const;

/**
 * Parses a reply, or throws `unknown` naming the function and the offending paths (never the
 * values: a reply can hold patient rows).
 */
export function parseReply<S extends z.ZodType>(schema: S, reply: unknown, context: string): z.output<S> {
  const result = schema.safeParse(reply);
  if (result.success) return result.data;
  const paths = [
    ...new Set(result.error.issues.map((issue) => issue.path.map(String).join(".") || "(reply)")),
  ];
  const shown = paths.slice(0, 5).join(", ") + (paths.length > 5 ? ", …" : "");
  throw new CvError("unknown", `[sync-engine] ${context} returned a malformed reply (at ${shown})`);
}

/** The wire form of a cursor, for arguments. */
export function wireCursor(cursor: SyncCursor): { txid: number; seq: number } {
  return { txid: cursor.txid, seq: cursor.seq };
}
