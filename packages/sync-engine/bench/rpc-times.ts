/**
 * The worst statement time of every RPC the product sends to the cloud, at its default page and
 * batch size, on the bench's big cloud, through the local Supabase with the hosted shape (the
 * service key's statements are cancelled after 8 s, a signed-in user's after 8 s, anon's after
 * 3 s). Each call is timed end to end (HTTP + the statement) a few times; the worst is compared
 * with the limit of the role that sends it.
 */
import { randomUUID } from "node:crypto";
import type { LocalSupabase } from "@centrovision/testkit";
import { createClient } from "@supabase/supabase-js";
import type postgres from "postgres";
import WebSocket from "ws";
import { createPostgresPeer, createSupabasePeer } from "../src/index.js";
import { createSupabaseInvoker } from "../src/rpc/index.js";
import { START_CURSOR } from "../src/sync-types.js";
import { newPatient } from "./seed.js";

const REPEAT = 3;
const SERVICE_LIMIT_MS = 8_000;
const USER_LIMIT_MS = 8_000;
const ANON_LIMIT_MS = 3_000;
/** The defaults the product sends: the engine's pages, the outbox's drain batch, the purge batch. */
const PULL_PAGE = 1_000;
const SNAPSHOT_PAGE = 2_000;
const DRAIN_BATCH = 500;

export interface RpcTime {
  readonly fn: string;
  readonly what: string;
  readonly worstMs: number;
  readonly limitMs: number;
}

/** The slowest of `times` calls; `prepare` runs before each, untimed, and hands `call` its input. */
async function worst<T>(times: number, prepare: () => Promise<T>, call: (input: T) => Promise<unknown>) {
  let max = 0;
  for (let i = 0; i < times; i++) {
    const input = await prepare();
    const started = performance.now();
    await call(input);
    max = Math.max(max, performance.now() - started);
  }
  return max;
}

export async function measureRpcTimes(
  supabase: LocalSupabase,
  cloud: postgres.Sql,
  clinic: { url: string; sql: postgres.Sql },
): Promise<RpcTime[]> {
  const remote = createSupabasePeer({ url: supabase.url, key: supabase.serviceRoleKey, timeoutMs: 60_000 });
  const local = createPostgresPeer({ url: clinic.url, timeoutMs: 60_000 });
  const [branch] = await cloud<{ id: string }[]>`select id from branches where code = 'BENCH'`;
  const branchId = branch?.id as string;
  const results: RpcTime[] = [];
  const nothing = async () => undefined;
  const time = async (fn: string, what: string, limitMs: number, call: () => Promise<unknown>) =>
    results.push({ fn, what, limitMs, worstMs: await worst(REPEAT, nothing, call) });
  try {
    const clinicNode = await local.node();
    const cloudNode = await remote.node();
    const stranger = randomUUID();
    await time("cv_health", "anon key, GET", ANON_LIMIT_MS, async () => {
      const res = await fetch(`${supabase.url}/rest/v1/rpc/cv_health`, {
        headers: { apikey: supabase.anonKey },
      });
      if (!res.ok) throw new Error(`cv_health: HTTP ${res.status}`);
    });
    await time("cv_sync_node", "identity, fingerprint", SERVICE_LIMIT_MS, () => remote.node());
    await time("cv_sync_init", "rename the node", SERVICE_LIMIT_MS, () => remote.init(cloudNode.nodeName));
    await time("cv_sync_cursor", "a peer's cursor", SERVICE_LIMIT_MS, () => remote.cursor(clinicNode.nodeId));
    await time("cv_sync_pull", `${PULL_PAGE} entries from the start of the log`, SERVICE_LIMIT_MS, () =>
      remote.pull({ consumer: stranger, after: START_CURSOR, limit: PULL_PAGE }),
    );
    await time("cv_sync_pending", "a consumer that never acknowledged: the whole log", SERVICE_LIMIT_MS, () =>
      remote.pending(stranger),
    );
    const [middle] = await cloud<{ id: string }[]>`
      select id from appointments order by id offset (select count(*) / 2 from appointments) limit 1`;
    await time("cv_sync_snapshot", `${SNAPSHOT_PAGE} appointments from the middle`, SERVICE_LIMIT_MS, () =>
      remote.snapshot({ table: "appointments", afterId: middle?.id ?? null, limit: SNAPSHOT_PAGE }),
    );
    results.push({
      fn: "cv_sync_apply",
      what: `${PULL_PAGE} new patients from the clinic`,
      limitMs: SERVICE_LIMIT_MS,
      worstMs: await worst(
        REPEAT,
        async () => {
          await clinic.sql`insert into patients ${clinic.sql(Array.from({ length: PULL_PAGE }, (_, n) => newPatient(branchId, `Subida ${n}`)))}`;
          const expected = (await remote.cursor(clinicNode.nodeId)).cursor;
          return {
            expected,
            page: await local.pull({ consumer: cloudNode.nodeId, after: expected, limit: PULL_PAGE }),
          };
        },
        ({ expected, page }) =>
          remote.apply({ source: page.source, expected, cursor: page.cursor, changes: page.changes }),
      ),
    });
    await time("cv_sync_ack", "acknowledge a cursor", SERVICE_LIMIT_MS, () =>
      remote.ack(stranger, START_CURSOR),
    );
    await time("cv_sync_conflicts_list", "100 open conflicts at most", SERVICE_LIMIT_MS, () =>
      remote.listConflicts(),
    );
    await time("cv_sync_reset_peer", "forget a peer", SERVICE_LIMIT_MS, () => remote.resetPeer(stranger));

    // A signed-in receptionist of the bench's branch drains an outbox batch (row-level security on).
    const userId = randomUUID();
    await cloud`insert into profiles (id, full_name, email) values (${userId}, 'Recepción Tiempos', ${`recepcion-${userId}@bench.example`})`;
    await cloud`insert into user_branches (id, user_id, branch_id) values (${randomUUID()}, ${userId}, ${branchId})`;
    const token = await supabase.mintUserToken(userId);
    const asUser = createClient(supabase.url, supabase.anonKey, {
      auth: { persistSession: false, autoRefreshToken: false },
      realtime: { transport: WebSocket as never },
      accessToken: async () => token,
    });
    // What @centrovision/offline's applier sends when a PC's outbox drains to the cloud, through
    // the same transport: one batch of new rows, each a change with no base version.
    const applier = createSupabaseInvoker("cloud", () => asUser, 60_000);
    try {
      await time(
        "cv_client_apply",
        `${DRAIN_BATCH} new patients, as a signed-in user (RLS)`,
        USER_LIMIT_MS,
        () =>
          applier.invoke("cv_client_apply", {
            p_mode: "settle",
            p_changes: Array.from({ length: DRAIN_BATCH }, (_, n) => {
              const now = new Date().toISOString();
              const row = {
                ...newPatient(branchId, `Cola ${n}`),
                ...{
                  second_last_name: null,
                  document_id: null,
                  email: null,
                  address: null,
                  allergies: null,
                  notes: null,
                },
                ...{ created_at: now, updated_at: now, version: randomUUID(), base_version: null },
              };
              return { table: "patients", id: row.id, op: "upsert", row, base_version: null };
            }),
          }),
      );
    } finally {
      await applier.close();
    }
    // Last: it deletes what every peer acknowledged.
    await time("cv_sync_purge", "one batch of 10,000 (retention 0)", SERVICE_LIMIT_MS, () =>
      remote.purge("0 seconds"),
    );
  } finally {
    await Promise.all([remote.close(), local.close()]);
  }
  return results;
}
