import { type CallOptions, CvError } from "@centrovision/core";
import { type Observable, Subject, takeUntil } from "rxjs";
import type { ChangeNotice, SyncPeer } from "../sync-peer.js";
import type { ApplyRequest, AuditQuery, SourceIdentity, SyncChange } from "../sync-types.js";
import { DEFLATED_MAX_BYTES, deflatedMessage } from "./deflated.js";
import { type PositionalBatch, positionalBatch } from "./positional.js";
import { isCutShort, isOlderPageReply, parseReply, replySchemas, wireCursor } from "./wire.js";

/**
 * Argument types of every cv_sync_* and cv_client_* function the engine calls, in declaration order. The
 * direct peer casts each argument to its type; PostgREST binds them by name.
 */
export const RPC_SIGNATURES = {
  cv_sync_init: { p_node_name: "text", p_reinit: "boolean" },
  cv_sync_node: {},
  cv_sync_pull: { p_consumer: "uuid", p_after: "jsonb", p_limit: "integer" },
  cv_sync_apply: {
    p_source: "jsonb",
    p_expected: "jsonb",
    p_cursor: "jsonb",
    p_changes: "jsonb",
    p_catchup: "boolean",
  },
  cv_sync_apply_snapshot: { p_source: "jsonb", p_page: "jsonb" },
  cv_sync_cursor: { p_peer: "uuid" },
  cv_sync_ack: { p_consumer: "uuid", p_cursor: "jsonb" },
  cv_sync_pending: { p_consumer: "uuid" },
  cv_sync_snapshot: { p_table: "text", p_after_id: "uuid", p_limit: "integer" },
  cv_sync_reset_peer: { p_peer: "uuid" },
  cv_sync_restamp_ahead: {},
  cv_sync_purge: { p_retention: "interval", p_limit: "integer" },
  cv_sync_conflicts_list: { p_status: "text", p_limit: "integer" },
  cv_sync_conflict_resolve: { p_id: "uuid", p_choice: "text", p_row: "jsonb", p_resolved_by: "text" },
  cv_client_apply: { p_changes: "jsonb", p_mode: "text" },
  cv_client_pending: { p_upto: "bigint" },
  cv_client_position: {},
  cv_disabled_users: {},
  cv_clinic_register_key: { p_key_id: "uuid", p_key: "text" },
  cv_clinic_key_export: {},
  cv_clinic_set_disabled_users: { p_users: "jsonb" },
  cv_audit_seal: { p_limit: "integer" },
  cv_audit_events: {
    p_patient_id: "uuid",
    p_user_id: "uuid",
    p_from: "timestamptz",
    p_to: "timestamptz",
    p_limit: "integer",
  },
  cv_audit_record_opened: { p_patient_id: "uuid", p_opened_at: "timestamptz" },
  cv_audit_trail: {
    p_patient_id: "uuid",
    p_user_id: "uuid",
    p_from: "timestamptz",
    p_to: "timestamptz",
    p_limit: "integer",
  },
  cv_audit_verify: { p_node: "uuid" },
  cv_audit_head: { p_node: "uuid" },
  cv_audit_sealed_after: { p_after: "bigint", p_limit: "integer" },
  cv_audit_receive: { p_events: "jsonb" },
} as const;

export type RpcName = keyof typeof RPC_SIGNATURES;
export type RpcArgs<F extends RpcName> = { readonly [K in keyof (typeof RPC_SIGNATURES)[F]]?: unknown };

/** Sealed audit events handed to the cloud per call (~650 B each). */
const AUDIT_SHIP_BATCH = 1_000;

/** Audit events one seal chains at most (~60 µs each): well inside a call's deadline. */
const AUDIT_SEAL_BATCH = 20_000;

/** Log entries (and tombstones) one purge call deletes at most: well inside a hosted statement timeout. */
const PURGE_BATCH = 10_000;

/** Functions that return nothing: the reply is not parsed. */
export const VOID_RPCS: ReadonlySet<RpcName> = new Set(["cv_sync_ack", "cv_clinic_register_key"]);

/** The arguments of `cv_audit_events` and `cv_audit_trail` (sql/0012) for a query: what it gives. */
export function auditQueryArgs(query: AuditQuery) {
  return {
    ...(query.patientId !== undefined && { p_patient_id: query.patientId }),
    ...(query.userId !== undefined && { p_user_id: query.userId }),
    ...(query.from !== undefined && { p_from: query.from }),
    ...(query.to !== undefined && { p_to: query.to }),
    ...(query.limit !== undefined && { p_limit: query.limit }),
  };
}

/** Calls one function once, within the deadline, and resolves with its JSON result; errors are `CvError`s. */
export type RpcInvoker = <F extends RpcName>(
  fn: F,
  args: RpcArgs<F>,
  options?: CallOptions,
) => Promise<unknown>;

/**
 * Calls a function whose single unnamed bytea parameter takes the whole request body, as sent:
 * what a transport that pays for each byte (HTTP to the cloud) offers. Resolves undefined, having
 * sent nothing, when its client cannot send bytes.
 */
export type RpcBytesInvoker = (
  fn: "cv_sync_apply_deflated",
  body: Uint8Array<ArrayBuffer>,
  options?: CallOptions,
) => Promise<unknown>;

function wireSource(source: SourceIdentity) {
  return {
    node_id: source.nodeId,
    epoch: source.epoch,
    fingerprint: source.fingerprint,
    ...(source.nodeName !== undefined && { node_name: source.nodeName }),
  };
}

/**
 * The typed SyncPeer over one transport: argument shapes and reply parsing live here, once. A
 * transport that pays for each byte (`invokeBytes`: HTTP to the cloud) sends a batch in the
 * smallest form the target takes (deflated, positional); a direct connection (the clinic server,
 * on the LAN) sends the array form, which the target reads fastest: 4,000 patients' collapse took
 * 36–40 ms from the array and 101–109 ms from the positional batch, whose rows the target first
 * builds into objects.
 */
export function createRpcPeer(
  label: string,
  invoke: RpcInvoker,
  close: () => Promise<void>,
  invokeBytes?: RpcBytesInvoker,
): SyncPeer {
  /**
   * The deflated batch of `request` where it is sent that way and fits, and the arguments of
   * `cv_sync_apply` to send it uncompressed otherwise (made only then). Deflated, the changes go
   * as the array: deflate takes out most of the keys it repeats (a page of 2,000 new patients:
   * 132 KB, 119 KB positional), and the cloud reads it without building each row's object from its
   * values (that page applied alone: median 177 ms, 207 from the positional batch). A batch whose
   * array does not fit goes as the positional batch, deflated where that fits.
   */
  const encodeApply = (request: ApplyRequest) => {
    const base = {
      p_source: wireSource(request.source),
      p_expected: wireCursor(request.expected),
      p_cursor: wireCursor(request.cursor),
      p_catchup: request.catchup ?? false,
    };
    /** The positional batch where the target takes it (made once, when first asked for), else the array. */
    let form: PositionalBatch | readonly SyncChange[] | undefined;
    const positionalOrArray = () =>
      (form ??= (request.positional && invokeBytes && positionalBatch(request.changes)) || request.changes);
    const deflate = (changes: PositionalBatch | readonly SyncChange[]) => {
      const body = deflatedMessage(JSON.stringify({ ...base, p_changes: changes }));
      return body.length <= DEFLATED_MAX_BYTES ? body : undefined;
    };
    const body =
      request.deflated && invokeBytes
        ? (deflate(request.changes) ??
          (positionalOrArray() === request.changes ? undefined : deflate(positionalOrArray())))
        : undefined;
    return { body, args: () => ({ ...base, p_changes: positionalOrArray() }) };
  };
  /** What `prepareApply` encoded, until its `apply`. */
  const prepared = new WeakMap<ApplyRequest, ReturnType<typeof encodeApply>>();
  /** A page as one object, where this engine reads a set: the node needs this release's migrations. */
  const olderFunctions = (what: string) =>
    new CvError(
      "invalid_config",
      `[sync-engine] ${label} sent its ${what} in the format of an older release: its sql/ ` +
        "functions predate this daemon's. Run `centrovision-sync cloud migrate` against the cloud " +
        "(with CENTROVISION_CLOUD_DB_URL, as its postgres user), then sync again",
    );
  /** A page the API cut short (`isCutShort`): the cloud's API setting, not a retry, fixes it. */
  const cutShort = (fn: string, reply: unknown[]) =>
    new CvError(
      "invalid_config",
      `[sync-engine] ${label} ${fn} answered ${reply.length} items without the page's end marker: the API ` +
        "cut the page short (PostgREST's db-max-rows; on Supabase, Settings → API → Max rows). Nothing of " +
        "it was applied. Raise Max rows to 1000 (the default) or more, or give the engine a smaller pageSize",
    );
  const call = async <F extends RpcName, T>(
    fn: F,
    args: RpcArgs<F>,
    options: CallOptions | undefined,
    schema: { safeParse(value: unknown): unknown },
  ): Promise<T> => parseReply(schema as never, await invoke(fn, args, options), `${label} ${fn}`) as T;

  return {
    label,
    init: (nodeName, options) =>
      call(
        "cv_sync_init",
        { p_node_name: nodeName, p_reinit: options?.reinit ?? false },
        options,
        replySchemas.init,
      ),
    node: (options) => call("cv_sync_node", {}, options, replySchemas.node),
    async pull({ consumer, after, limit }, options) {
      const reply = await invoke(
        "cv_sync_pull",
        { p_consumer: consumer, p_after: wireCursor(after), p_limit: limit },
        options,
      );
      if (isOlderPageReply(reply, "changes")) throw olderFunctions("page of changes");
      if (isCutShort(reply)) throw cutShort("cv_sync_pull", reply as unknown[]);
      return parseReply(replySchemas.pull, reply, `${label} cv_sync_pull`);
    },
    prepareApply(request) {
      prepared.set(request, encodeApply(request));
    },
    async apply(request, options) {
      const { args, body } = prepared.get(request) ?? encodeApply(request);
      prepared.delete(request);
      const reply =
        body && invokeBytes ? await invokeBytes("cv_sync_apply_deflated", body, options) : undefined;
      if (reply !== undefined)
        return parseReply(replySchemas.apply, reply, `${label} cv_sync_apply_deflated`);
      return call("cv_sync_apply", args(), options, replySchemas.apply);
    },
    cursor: (peerId, options) => call("cv_sync_cursor", { p_peer: peerId }, options, replySchemas.cursor),
    async ack(consumer, cursor, options) {
      await invoke("cv_sync_ack", { p_consumer: consumer, p_cursor: wireCursor(cursor) }, options);
    },
    pending: (consumer, options) =>
      call("cv_sync_pending", { p_consumer: consumer }, options, replySchemas.pending),
    async snapshot({ table, afterId, limit }, options) {
      const reply = await invoke(
        "cv_sync_snapshot",
        { p_table: table, p_after_id: afterId, p_limit: limit },
        options,
      );
      if (isOlderPageReply(reply, "rows")) throw olderFunctions("initial-sync page");
      if (isCutShort(reply)) throw cutShort("cv_sync_snapshot", reply as unknown[]);
      return parseReply(replySchemas.snapshot, reply, `${label} cv_sync_snapshot`);
    },
    applySnapshot: (source, page, options) =>
      call(
        "cv_sync_apply_snapshot",
        {
          p_source: wireSource(source),
          p_page: {
            node_id: page.source.nodeId,
            table: page.table,
            after_id: page.afterId,
            last_id: page.lastId,
            format: "row_text",
            columns: page.columns,
            rows: page.rows,
            has_more: page.hasMore,
            cursor: wireCursor(page.cursor),
          },
        },
        options,
        replySchemas.applySnapshot,
      ),
    restampAhead: (options) => call("cv_sync_restamp_ahead", {}, options, replySchemas.count),
    resetPeer: (peerId, options) =>
      call("cv_sync_reset_peer", { p_peer: peerId }, options, replySchemas.reset),
    purge: (retention, options) =>
      call(
        "cv_sync_purge",
        {
          ...(retention !== undefined && { p_retention: retention }),
          p_limit: options?.limit ?? PURGE_BATCH,
        },
        options,
        replySchemas.purge,
      ),
    listConflicts: (query, options) => {
      const status = query?.status ?? "open";
      return call(
        "cv_sync_conflicts_list",
        { p_status: status === "all" ? null : status, p_limit: query?.limit ?? 100 },
        options,
        replySchemas.conflicts,
      );
    },
    resolveConflict: (conflictId, resolution, options) =>
      call(
        "cv_sync_conflict_resolve",
        {
          p_id: conflictId,
          ...("keep" in resolution
            ? { p_choice: resolution.keep === "local" ? "keep_local" : "keep_remote" }
            : { p_choice: "merged", p_row: resolution.merged }),
          ...(options?.resolvedBy !== undefined && { p_resolved_by: options.resolvedBy }),
        },
        options,
        replySchemas.resolve,
      ),
    disabledUsers: (options) => call("cv_disabled_users", {}, options, replySchemas.disabledUsers),
    setDisabledUsers: (userIds, options) =>
      call("cv_clinic_set_disabled_users", { p_users: userIds }, options, replySchemas.count),
    clinicKey: (options) => call("cv_clinic_key_export", {}, options, replySchemas.clinicKey),
    async registerClinicKey(key, options) {
      await invoke("cv_clinic_register_key", { p_key_id: key.keyId, p_key: key.key }, options);
    },
    sealAudit: (options) => call("cv_audit_seal", { p_limit: AUDIT_SEAL_BATCH }, options, replySchemas.count),
    auditEvents: (query, options) =>
      call("cv_audit_events", auditQueryArgs(query), options, replySchemas.auditEvents),
    verifyAudit: (options) => call("cv_audit_verify", {}, options, replySchemas.auditVerify),
    auditHead: (nodeId, options) => call("cv_audit_head", { p_node: nodeId }, options, replySchemas.count),
    sealedAuditAfter: (position, options) =>
      call(
        "cv_audit_sealed_after",
        { p_after: position, p_limit: AUDIT_SHIP_BATCH },
        options,
        replySchemas.sealedAudit,
      ),
    receiveAudit: (events, options) =>
      call("cv_audit_receive", { p_events: events }, options, replySchemas.count),
    close,
  };
}

/**
 * `peer` with the feed `open` makes as its `changes$`, which its `close()` ends for every
 * subscriber, and `listening()` as the feed reports it through `onListening`.
 */
export function withChangeFeed(
  peer: SyncPeer,
  open: (onListening: (listening: boolean) => void) => Observable<ChangeNotice>,
): SyncPeer {
  const closed = new Subject<void>();
  let listening = false;
  const feed = open((now) => {
    listening = now;
  });
  return {
    ...peer,
    changes$: feed.pipe(takeUntil(closed)),
    listening: () => listening,
    close: async () => {
      closed.next();
      closed.complete();
      await peer.close();
    },
  };
}
