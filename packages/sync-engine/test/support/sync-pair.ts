import { randomUUID } from "node:crypto";
import { SYNCED_TABLES } from "@centrovision/core";
import {
  applyMigrations,
  createLink,
  type Link,
  type LocalSupabase,
  startLocalSupabase,
} from "@centrovision/testkit";
import {
  consultation,
  insertConsultation,
  onServer,
  serverUrl,
  sharedPostgres,
  syncLogin,
} from "@centrovision/testkit/nodes";
import postgres from "postgres";
import {
  createPostgresPeer,
  createSupabasePeer,
  createSyncEngine,
  type SyncEngine,
  type SyncEngineOptions,
  type SyncPeer,
} from "../../src/index.js";

/** A node's database as the tests see it: a superuser connection that bypasses the engine. */
export interface NodeDb {
  readonly name: string;
  readonly nodeId: string;
  readonly sql: postgres.Sql;
}

/**
 * The two places rows live, as in a clinic: a cloud (a local Supabase, reached over HTTP through
 * a fault-injecting link, with the service-role key) and a clinic server (a database reached
 * directly, as a `centrovision_sync` login). Both are databases of the run's PostgreSQL.
 */
export interface SyncPair {
  readonly cloud: NodeDb & { readonly supabase: LocalSupabase; readonly link: Link };
  readonly clinic: NodeDb & { readonly url: string; readonly database: string };
  /** A peer for the cloud, over the link. */
  cloudPeer(timeoutMs?: number): SyncPeer;
  /** A peer for the clinic server. */
  clinicPeer(timeoutMs?: number): SyncPeer;
  /**
   * An engine between fresh peers; stopped (and its peers closed) by `close()`. It syncs when told
   * (`syncNow`) or at its interval; `wake: true` also lets the nodes' change feeds start cycles, which
   * would otherwise sync a test's writes before it has made them all.
   */
  engine(
    options?: Partial<Omit<SyncEngineOptions, "local" | "remote">> & { timeoutMs?: number; wake?: boolean },
  ): SyncEngine;
  /** Environment for a child process running the engine (support/engine-child.ts). */
  childEnv(): Record<string, string>;
  close(): Promise<void>;
}

async function nodeIdOf(sql: postgres.Sql, name: string): Promise<string> {
  const [row] = await sql<{ node: { node_id: string } }[]>`select cv_sync_init(${name}) as node`;
  if (!row) throw new Error("cv_sync_init returned nothing");
  return row.node.node_id;
}

/** A fresh migrated database on the run's server; returns its name and superuser URL. */
export async function createClinicDatabase(): Promise<{ database: string; url: string }> {
  const database = `sync_clinic_${randomUUID().slice(0, 8)}`;
  await onServer(`create database "${database}"`);
  const url = new URL(serverUrl());
  url.pathname = `/${database}`;
  await applyMigrations(url.href);
  return { database, url: url.href };
}

/** `maxRows`: the cloud API's cap on a result's rows (PostgREST's db-max-rows; default 1000). */
export async function createSyncPair(options: { readonly maxRows?: number } = {}): Promise<SyncPair> {
  const supabase = await startLocalSupabase({ postgres: sharedPostgres(), log: () => {}, ...options });
  const gateway = new URL(supabase.url);
  const link = await createLink({ target: { host: gateway.hostname, port: Number(gateway.port) } });
  const cloudSql = postgres(supabase.dbUrl, { max: 4, onnotice: () => {} });
  const { database, url } = await createClinicDatabase();
  const clinicSql = postgres(url, { max: 4, onnotice: () => {} });
  const login = await syncLogin();
  const clinicUrl = new URL(url);
  clinicUrl.username = login.user;
  clinicUrl.password = login.password;
  const cloud = { name: "cloud", nodeId: await nodeIdOf(cloudSql, "cloud"), sql: cloudSql, supabase, link };
  const clinic = {
    name: "clinic",
    nodeId: await nodeIdOf(clinicSql, "clinic"),
    sql: clinicSql,
    url: clinicUrl.href,
    database,
  };
  const peers: SyncPeer[] = [];
  const engines: SyncEngine[] = [];
  const cloudPeer = (timeoutMs = 10_000) => {
    const peer = createSupabasePeer({
      url: link.url(supabase.url),
      key: supabase.serviceRoleKey,
      timeoutMs,
      label: "cloud",
    });
    peers.push(peer);
    return peer;
  };
  const clinicPeer = (timeoutMs = 10_000) => {
    const peer = createPostgresPeer({ url: clinic.url, timeoutMs, label: "clinic server" });
    peers.push(peer);
    return peer;
  };
  return {
    cloud,
    clinic,
    cloudPeer,
    clinicPeer,
    engine({ timeoutMs, wake = false, ...options } = {}) {
      const [local, remote] = [clinicPeer(timeoutMs), cloudPeer(timeoutMs)];
      const engine = createSyncEngine({
        local: wake ? local : { ...local, changes$: undefined },
        remote: wake ? remote : { ...remote, changes$: undefined },
        intervalMs: 60_000,
        minBackoffMs: 50,
        maxBackoffMs: 500,
        ...options,
      });
      engines.push(engine);
      return engine;
    },
    childEnv: () => ({
      CV_CLOUD_URL: link.url(supabase.url),
      CV_CLOUD_KEY: supabase.serviceRoleKey,
      CV_CLINIC_URL: clinic.url,
    }),
    async close() {
      await Promise.all(engines.map((engine) => engine.stop()));
      await Promise.all(peers.map((peer) => peer.close()));
      await Promise.all([cloudSql.end(), clinicSql.end()]);
      await link.close();
      await supabase.stop();
      await onServer(`drop database if exists "${database}" with (force)`);
    },
  };
}

/** A supabase-js client of `supabase` that carries `token`, as a signed-in node's or person's does. */
export async function supabaseClientAs(supabase: LocalSupabase, token: string) {
  const [{ createClient }, { default: WebSocket }] = await Promise.all([
    import("@supabase/supabase-js"),
    import("ws"),
  ]);
  return createClient(supabase.url, supabase.anonKey, {
    auth: { persistSession: false },
    realtime: { transport: WebSocket as never },
    accessToken: async () => token,
  });
}

/**
 * A cloud peer signed in as a new clinic node credential (cv_sync_register_node) holding
 * `branchIds`, as the daemon's: its token carries app_metadata.centrovision_node, so it may also
 * join the cloud's wake-up channel.
 */
export async function clinicNodePeer(pair: SyncPair, branchIds: readonly string[]): Promise<SyncPeer> {
  const supabase = pair.cloud.supabase;
  const nodeUser = randomUUID();
  await pair.cloud
    .sql`select cv_sync_register_node(${nodeUser}::uuid, 'Clínica Roma', ${branchIds as string[]}::uuid[])`;
  const token = await supabase.mintUserToken(nodeUser, {
    app_metadata: { provider: "email", providers: ["email"], centrovision_node: "Clínica Roma" },
  });
  const client = await supabaseClientAs(supabase, token);
  return createSupabasePeer({
    url: supabase.url,
    client: { rpc: (fn, args) => client.rpc(fn, args), realtimeClient: async () => client as never },
    timeoutMs: 10_000,
  });
}

/** md5 of every synced table, rows ordered by id, as JSON: equal on both sides = converged. */
/** A pair whose engine has synced one consultation from the cloud: the start of the engine's tests. */
export async function syncedPair(): Promise<{ pair: SyncPair; engine: SyncEngine; branchId: string }> {
  const pair = await createSyncPair();
  const engine = pair.engine();
  const base = consultation();
  await insertConsultation(pair.cloud.sql, base);
  const { lastError } = await engine.syncNow();
  if (lastError !== null) throw new Error(`[test] the first sync failed: ${lastError.message}`);
  return { pair, engine, branchId: base.branches.id };
}

export async function checksums(sql: postgres.Sql): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const table of SYNCED_TABLES) {
    const [row] = await sql<{ sum: string; n: number }[]>`
      select md5(coalesce(string_agg(to_jsonb(t)::text, ',' order by t.id), '')) as sum, count(*)::int as n
      from ${sql(table)} t`;
    out[table] = `${row?.n}:${row?.sum}`;
  }
  return out;
}

/** Versions logged more than once on a node (a rescope entry repeats its row's version by design): a change applied twice would show here. */
export async function duplicateLogEntries(sql: postgres.Sql): Promise<number> {
  const [row] = await sql<{ n: number }[]>`
    select count(*)::int as n from (
      select 1 from cv_sync.change_log where op <> 'rescope'
      group by table_name, row_id, version having count(*) > 1) d`;
  return row?.n ?? 0;
}

/** Rows of `table` that differ between the two sides, with both images: for failure messages. */
export async function differingRows(a: postgres.Sql, b: postgres.Sql, table: string) {
  const dump = async (sql: postgres.Sql) =>
    new Map(
      (
        await sql<
          { id: string; row: Record<string, unknown> }[]
        >`select id, to_jsonb(t) as row from ${sql(table)} t`
      ).map((r) => [r.id, r.row] as const),
    );
  const [left, right] = await Promise.all([dump(a), dump(b)]);
  const ids = new Set([...left.keys(), ...right.keys()]);
  return [...ids]
    .filter((id) => JSON.stringify(left.get(id)) !== JSON.stringify(right.get(id)))
    .map((id) => ({ id, a: left.get(id), b: right.get(id) }));
}

/** Each side's log entries, row state and conflicts for some rows: what a failing seed needs explained. */
export async function explainRows(pair: SyncPair, ids: readonly string[]): Promise<string> {
  const out: string[] = [];
  for (const [side, node] of [
    ["cloud", pair.cloud],
    ["clinic", pair.clinic],
  ] as const) {
    const log = await node.sql`
      select row_id, seq, txid::text, op, version, base_version, origin, hlc, changed_columns, received_from, row_data
      from cv_sync.change_log where row_id = any(${ids}) order by seq`;
    const state = await node.sql`select * from cv_sync.row_state where row_id = any(${ids})`;
    const conflicts = await node.sql`
      select id, row_id, winner, status, reason, columns, local_version, remote_version
      from cv_sync.conflicts where row_id = any(${ids}) order by created_at`;
    out.push(`${side} (${node.nodeId}) log ${JSON.stringify(log)}`, `${side} state ${JSON.stringify(state)}`);
    out.push(`${side} conflicts ${JSON.stringify(conflicts)}`);
  }
  return out.join("\n");
}
