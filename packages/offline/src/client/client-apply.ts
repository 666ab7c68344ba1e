import {
  type CallOptions,
  CvError,
  type ErrorCode,
  parseConfig,
  parseOrThrow,
  SYNCED_TABLES,
  type TableName,
  tables,
} from "@centrovision/core";
import type {
  AuditQuery,
  PostgresClient,
  PostgresPeerOptions,
  SupabaseRpcClient,
} from "@centrovision/sync-engine";
import {
  auditQueryArgs,
  createPostgresInvoker,
  createSupabaseInvoker,
  parseReply,
  type RpcInvoker,
} from "@centrovision/sync-engine/rpc";
import * as z from "zod";

/**
 * One write a PC made, as the tier that took it returned it: the failover router's journal
 * entries and the offline outbox's items both fit.
 */
export interface ClientWrite {
  readonly table: TableName;
  readonly op: "upsert" | "delete";
  readonly id: string;
  /** The stored row after the write, with its `version` and `base_version`; null for a delete. */
  readonly row: Readonly<Record<string, unknown>> | null;
  /** For a delete: the version of the row the PC deleted. A delete without it is ignored. */
  readonly baseVersion?: string | null;
}

/**
 * - `settle` (default; the outbox): a row the server changed concurrently is settled by the sync
 *   engine's conflict policy; the losing version is kept in `_conflicts`.
 * - `carry` (read-your-writes at failover): such a row is left as it is; the regular sync settles
 *   it with the rows' real clocks.
 */
export type ClientApplyMode = "settle" | "carry";

export interface ClientApplyOptions extends CallOptions {
  mode?: ClientApplyMode;
}

/** A write refused for good: retrying it cannot succeed (dead-letter it, tell a person). */
export interface RejectedWrite {
  readonly table: TableName;
  readonly id: string;
  /** `unauthorized` (grants/RLS), `constraint`, `invalid_input` or `conflict` (cannot be settled here). */
  readonly code: ErrorCode;
  /** What is wrong and what to do, without row values. */
  readonly message: string;
}

/**
 * A booking the server found clashing with another appointment it holds (the same patient,
 * doctor or room at an overlapping time) when it arrived from a PC's outbox: both are kept.
 */
export interface DoubleBooking {
  /** The appointment that arrived. */
  readonly bookingId: string;
  /** The appointment it clashes with, as the caller's person sees it on that server. */
  readonly otherId: string;
  /** What both hold at that time. */
  readonly shared: readonly ("patient_id" | "doctor_id" | "room_id")[];
}

export interface ClientApplyResult {
  /** Written as sent (new, or a fast-forward from its base version). */
  readonly applied: number;
  /** Already there (same version), or an older version than the server holds via this write. */
  readonly skipped: number;
  /** Concurrent edits settled by policy (`settle`) or left for the sync (`carry`). */
  readonly conflicts: number;
  /** Deletes without a base version: deleting an unknown version would be a blind write. */
  readonly ignored: number;
  readonly rejected: readonly RejectedWrite[];
  /** `settle` only: bookings that arrived clashing with an appointment made meanwhile (both kept). */
  readonly doubleBookings: readonly DoubleBooking[];
}

/**
 * Writes checked against their tables' schemas and ordered parents first, ready for
 * {@link ClientApplier.apply} (made by {@link ClientApplier.prepare}).
 */
export interface PreparedWrites {
  /** The changes that go to the server: a delete without a base version is left out. */
  readonly size: number;
}

export interface ClientApplier {
  /**
   * Applies a batch in one transaction with the caller's own rights (grants on the clinic server,
   * RLS on the cloud), parents before children. A write refused for good is reported in
   * `rejected` and the rest of the batch still applies; a network failure rejects the whole call
   * with `unavailable`/`timeout` (nothing or everything was committed: retrying is safe, every
   * write is idempotent by version). `writes` is a list, or what `prepare` made of one.
   */
  apply(
    writes: readonly ClientWrite[] | PreparedWrites,
    options?: ClientApplyOptions,
  ): Promise<ClientApplyResult>;
  /**
   * Checks and orders `writes` as `apply` does, without sending them: a caller sending batch after
   * batch (the outbox drain) does this while the server works on the batch before, so the server
   * does not wait for it (checking 500 patients' rows takes the PC some 20 ms).
   *
   * @throws CvError `invalid_input` for a write `apply` would refuse.
   */
  prepare(writes: readonly ClientWrite[]): PreparedWrites;
  /**
   * The server's changes not yet acknowledged by the cloud (`cv_client_pending`), all of them or
   * only those logged up to `upTo` (a {@link ClientApplier.logPosition}).
   */
  pendingUp(options?: PendingOptions): Promise<number>;
  /** Where the server's change log stands now: the `upTo` of a later `pendingUp`. */
  logPosition(options?: CallOptions): Promise<string>;
  /**
   * Records in the server's audit trail that the person opened a patient's record
   * (`cv_audit_record_opened`, sql/0012), at `openedAt` for one the PC held while no server
   * answered (default: now). `unauthorized` for a patient the person does not see; a
   * `SyncError` with reason `clock_ahead` (CV009) for a time ahead of the server's clock.
   */
  recordOpened(patientId: string, openedAt?: Date, options?: CallOptions): Promise<void>;
  /**
   * The audit trail of the patients an administrator sees (`cv_audit_trail`, sql/0012): the latest
   * `query.limit` (100, at most 1,000) matching, oldest first. `unauthorized` for anyone else.
   */
  auditTrail(query?: AuditQuery, options?: CallOptions): Promise<AuditTrailEvent[]>;
  close(): Promise<void>;
}

/** One event of the trail an administrator reads: ids, names, author and time, never row data. */
export interface AuditTrailEvent {
  readonly at: string;
  readonly action: "insert" | "update" | "delete" | "open";
  readonly table: string;
  readonly rowId: string;
  readonly patientId: string;
  /** The patient's full name (the administrator sees the patient). */
  readonly patientName: string;
  readonly changedColumns: readonly string[] | null;
  /** Who: their name where the administrator may read their profile; null for the server's own writes. */
  readonly author: {
    readonly user: string | null;
    readonly name: string | null;
    readonly signIn: string | null;
    readonly device: string | null;
  } | null;
  readonly node: string;
}

export interface PendingOptions extends CallOptions {
  upTo?: string;
}

export interface ClientApplierOptions {
  /**
   * The clinic server: a login in `centrovision_app` (URL) with the person's clinic session
   * (`session`, read before every call; see `PostgresPeerOptions.session`), or a `postgres` client.
   */
  postgres?:
    | {
        url: string;
        timeoutMs?: number;
        session?: () => string | undefined;
        ssl?: PostgresPeerOptions["ssl"];
      }
    | { sql: PostgresClient | (() => PostgresClient); timeoutMs?: number };
  /** The cloud: a supabase-js client holding the user's session (or the anon key, subject to RLS). */
  supabase?: { client: SupabaseRpcClient; url: string; timeoutMs?: number };
  /** Name in messages. */
  label?: string;
}

const optionsSchema = z
  .object({
    postgres: z
      .union([
        z
          .object({
            url: z.string().min(1),
            timeoutMs: z.int().positive().optional(),
            session: z.custom<() => string | undefined>((v) => typeof v === "function").optional(),
            ssl: z
              .custom<PostgresPeerOptions["ssl"]>(
                (v) => v === false || v === "require" || typeof v === "object",
              )
              .optional(),
          })
          .strict(),
        z
          .object({
            sql: z.custom<PostgresClient | (() => PostgresClient)>(
              (v) => typeof v === "function" || (typeof v === "object" && v !== null),
            ),
            timeoutMs: z.int().positive().optional(),
          })
          .strict(),
      ])
      .optional(),
    supabase: z
      .object({
        client: z.custom<SupabaseRpcClient>(
          (v) => typeof v === "object" && v !== null && typeof (v as { rpc?: unknown }).rpc === "function",
        ),
        url: z.url(),
        timeoutMs: z.int().positive().optional(),
      })
      .strict()
      .optional(),
    label: z.string().min(1).optional(),
  })
  .strict()
  .refine((o) => (o.postgres === undefined) !== (o.supabase === undefined), {
    message: "give exactly one of postgres (the clinic server) or supabase (the cloud)",
    path: ["postgres"],
  });

const TABLE_ORDER = new Map<string, number>(SYNCED_TABLES.map((table, index) => [table, index]));

const replySchema = z.object({
  applied: z.int().nonnegative(),
  skipped: z.int().nonnegative(),
  conflicts: z.int().nonnegative(),
  rejected: z.array(
    z.object({
      table: z.enum(SYNCED_TABLES),
      id: z.guid(),
      code: z.enum(["unauthorized", "constraint", "invalid_input", "conflict"]),
      message: z.string(),
    }),
  ),
  overlaps: z.array(
    z.object({
      id: z.guid(),
      with: z.guid(),
      columns: z.array(z.enum(["patient_id", "doctor_id", "room_id"])),
    }),
  ),
});

const trailSchema = z.array(
  z
    .object({
      at: z.string(),
      action: z.enum(["insert", "update", "delete", "open"]),
      table: z.string(),
      row_id: z.guid(),
      patient_id: z.guid(),
      patient_name: z.string(),
      changed_columns: z.array(z.string()).nullable(),
      author: z
        .object({
          user: z.string().nullable(),
          name: z.string().nullable(),
          sign_in: z.string().nullable(),
          device: z.string().nullable(),
        })
        .nullable(),
      node: z.guid(),
    })
    .transform(
      (e): AuditTrailEvent => ({
        at: new Date(e.at).toISOString(),
        action: e.action,
        table: e.table,
        rowId: e.row_id,
        patientId: e.patient_id,
        patientName: e.patient_name,
        changedColumns: e.changed_columns,
        author:
          e.author === null
            ? null
            : { user: e.author.user, name: e.author.name, signIn: e.author.sign_in, device: e.author.device },
        node: e.node,
      }),
    ),
);

const auditQuerySchema = z
  .object({
    patientId: z.guid().optional(),
    userId: z.guid().optional(),
    from: z.iso.datetime({ offset: true }).optional(),
    to: z.iso.datetime({ offset: true }).optional(),
    limit: z.int().min(1).max(1000).optional(),
  })
  .strict();

interface WireChange {
  table: TableName;
  id: string;
  op: "upsert" | "delete";
  row: Readonly<Record<string, unknown>> | null;
  base_version: string | null;
}

/** The changes of a batch as `cv_client_apply` takes them, and the deletes left out for want of a base version. */
class Prepared implements PreparedWrites {
  constructor(
    readonly changes: readonly WireChange[],
    readonly ignored: number,
  ) {}

  get size(): number {
    return this.changes.length;
  }
}

/** Validates each write against its table's schema (no row values in the message) and orders parents first. */
function toWire(writes: readonly ClientWrite[], label: string): Prepared {
  const changes: WireChange[] = [];
  let ignored = 0;
  for (const [index, write] of writes.entries()) {
    if (!TABLE_ORDER.has(write.table)) {
      throw new CvError(
        "invalid_input",
        `[offline] ${label}: write #${index} is for ${String(write.table)}, not a synced table`,
      );
    }
    if (write.op === "delete") {
      if (!write.baseVersion) {
        ignored++;
        continue;
      }
      changes.push({
        table: write.table,
        id: write.id.toLowerCase(),
        op: "delete",
        row: null,
        base_version: write.baseVersion,
      });
      continue;
    }
    const parsed = tables[write.table].rowSchema.safeParse(write.row);
    if (!parsed.success || parsed.data.id !== write.id.toLowerCase()) {
      throw new CvError(
        "invalid_input",
        `[offline] ${label}: write #${index} (${write.table}) is not a stored row of that table with id ${write.id}; pass the row the tier returned`,
        { table: write.table },
      );
    }
    const row = parsed.data as Record<string, unknown>;
    changes.push({
      table: write.table,
      id: row.id as string,
      op: "upsert",
      row,
      base_version: (row.base_version as string | null) ?? null,
    });
  }
  changes.sort((a, b) => {
    const order = (TABLE_ORDER.get(a.table) ?? 0) - (TABLE_ORDER.get(b.table) ?? 0);
    // Deletes go children first: after every upsert, in reverse table order.
    if (a.op !== b.op) return a.op === "upsert" ? -1 : 1;
    return a.op === "upsert" ? order : -order;
  });
  return new Prepared(changes, ignored);
}

/**
 * Writes a PC's rows onto the clinic server or the cloud through `cv_client_apply` (sql/0010):
 * version-checked like the sync engine's apply (a fast-forward or a settled conflict, never a
 * blind overwrite), captured like any edit so the sync engine propagates it, and with the
 * caller's own rights — a PC holds its person's session on either tier, never the sync role.
 */
export function createClientApplier(input: ClientApplierOptions): ClientApplier {
  const options = parseConfig("[offline] invalid client applier options", optionsSchema, input);
  let invoker: { invoke: RpcInvoker; close(): Promise<void> };
  let label: string;
  if (options.supabase) {
    label = options.label ?? `cloud (${new URL(options.supabase.url).host})`;
    invoker = createSupabaseInvoker(
      label,
      () => options.supabase?.client as SupabaseRpcClient,
      options.supabase.timeoutMs ?? 15_000,
    );
  } else {
    const pg = options.postgres as NonNullable<typeof options.postgres>;
    const made = createPostgresInvoker({
      ...pg,
      ...(options.label !== undefined && { label: options.label }),
    });
    label = made.label;
    invoker = made;
  }

  const count = (reply: unknown, fn: string): number => {
    const value = Number(reply);
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new CvError(
        "unknown",
        `[offline] ${label} ${fn} answered in an unexpected shape; apply sql/0010 there`,
      );
    }
    return value;
  };

  return {
    prepare: (writes) => toWire(writes, label),
    async apply(writes, applyOptions) {
      const prepared =
        writes instanceof Prepared
          ? writes
          : Array.isArray(writes)
            ? toWire(writes as readonly ClientWrite[], label)
            : undefined;
      if (prepared === undefined) {
        throw new CvError(
          "invalid_input",
          `[offline] ${label}: apply takes a list of writes, or what an applier's prepare() made of one`,
        );
      }
      const { changes, ignored } = prepared;
      if (changes.length === 0) {
        return { applied: 0, skipped: 0, conflicts: 0, ignored, rejected: [], doubleBookings: [] };
      }
      const reply = await invoker.invoke(
        "cv_client_apply",
        { p_changes: changes, p_mode: applyOptions?.mode ?? "settle" },
        applyOptions,
      );
      const parsed = replySchema.safeParse(reply);
      if (!parsed.success) {
        throw new CvError(
          "unknown",
          `[offline] ${label} cv_client_apply answered in an unexpected shape; apply sql/0010 there`,
        );
      }
      const { overlaps, ...counts } = parsed.data;
      const doubleBookings = overlaps.map((o) => ({ bookingId: o.id, otherId: o.with, shared: o.columns }));
      return { ...counts, ignored, doubleBookings };
    },
    async pendingUp(pendingOptions) {
      const args = pendingOptions?.upTo === undefined ? {} : { p_upto: pendingOptions.upTo };
      return count(await invoker.invoke("cv_client_pending", args, pendingOptions), "cv_client_pending");
    },
    async logPosition(callOptions) {
      return String(count(await invoker.invoke("cv_client_position", {}, callOptions), "cv_client_position"));
    },
    async recordOpened(patientId, openedAt, callOptions) {
      const id = z.guid().safeParse(patientId);
      if (!id.success || (openedAt !== undefined && Number.isNaN(openedAt.getTime()))) {
        throw new CvError(
          "invalid_input",
          `[offline] ${label}: recordOpened needs a patient id (uuid) and, if given, a valid time`,
        );
      }
      await invoker.invoke(
        "cv_audit_record_opened",
        { p_patient_id: id.data.toLowerCase(), p_opened_at: openedAt?.toISOString() ?? null },
        callOptions,
      );
    },
    async auditTrail(query = {}, callOptions) {
      const parsed = parseOrThrow(auditQuerySchema, query, `${label} audit trail query`);
      const reply = await invoker.invoke("cv_audit_trail", auditQueryArgs(parsed), callOptions);
      return parseReply(trailSchema, reply, `${label} cv_audit_trail`);
    },
    close: () => invoker.close(),
  };
}
