import { randomUUID } from "node:crypto";
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import {
  createLink,
  GATEWAY_UPGRADE_CHANNEL,
  type GatewayUpgradeRecord,
  type Link,
} from "@centrovision/testkit";
import { consultation, insert, insertConsultation, patient, rowOf } from "@centrovision/testkit/nodes";
import postgres from "postgres";
import { firstValueFrom, type Subscription, timeout } from "rxjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type ChangeNotice,
  createPostgresPeer,
  createSupabasePeer,
  createSyncEngine,
  type SyncEngine,
  type SyncPeer,
} from "../src/index.js";
import { clinicNodePeer, createSyncPair, type SyncPair, supabaseClientAs } from "./support/sync-pair.js";

let pair: SyncPair;
let link: Link;

beforeAll(async () => {
  pair = await createSyncPair();
  link = await createLink({ target: { host: "127.0.0.1", port: Number(new URL(pair.clinic.url).port) } });
});

afterAll(async () => {
  await link.close();
  await pair.close();
});

/** The feed's connections on the clinic server (it names itself), and how many of them listen. */
async function feedConnections(): Promise<{ open: number; listening: number }> {
  const [row] = await pair.clinic.sql<{ open: number; listening: number }[]>`
    select count(*)::int as open, count(*) filter (where query ilike 'LISTEN %' and state = 'idle')::int as listening
    from pg_stat_activity
    where application_name = 'centrovision-sync feed' and datname = current_database()`;
  return row ?? { open: 0, listening: 0 };
}

/** Counts the cycles an engine starts (each begins by pulling). */
function countCycles(engine: SyncEngine): { count: number } {
  const counter = { count: 0 };
  let phase = "";
  engine.status$.subscribe((status) => {
    if (status.phase === "pulling" && phase !== "pulling") counter.count += 1;
    phase = status.phase;
  });
  return counter;
}

function notifier(): postgres.Sql {
  return postgres(pair.clinic.url, { max: 1, onnotice: () => {} });
}

describe("a Postgres peer's change feed", () => {
  it("hears the clinic server's cv_sync_change and nothing else, and holds no connection unwatched", async () => {
    const peer = createPostgresPeer({ url: pair.clinic.url, timeoutMs: 2_000 });
    const feed = peer.changes$;
    if (feed === undefined) throw new Error("a peer opened with a url has a change feed");
    expect(await feedConnections()).toEqual({ open: 0, listening: 0 });
    const heard: number[] = [];
    const subscription = feed.subscribe(() => heard.push(Date.now()));
    await expect.poll(feedConnections).toEqual({ open: 1, listening: 1 });
    // Starting to listen is no change: whoever subscribes reads the node then anyway.
    expect(heard).toHaveLength(0);
    const other = notifier();
    const sent = Date.now();
    const next = firstValueFrom(feed.pipe(timeout(5_000)));
    await other`notify cv_sync_change`;
    await next;
    expect(heard).toHaveLength(1);
    expect((heard[0] ?? 0) - sent).toBeLessThan(2_000);
    // Another channel is not a change.
    await other`notify something_else`;
    await other`select pg_sleep(0.2)`;
    expect(heard).toHaveLength(1);
    subscription.unsubscribe();
    await expect.poll(feedConnections).toEqual({ open: 0, listening: 0 });
    await other.end();
    await peer.close();
  });

  it("listens again after the connection dies, saying so, and a closed peer stops at once even while the server is unreachable", async () => {
    const peer = createPostgresPeer({ url: link.url(pair.clinic.url), timeoutMs: 2_000 });
    const feed = peer.changes$ as NonNullable<SyncPeer["changes$"]>;
    let heard = 0;
    const subscription: Subscription = feed.subscribe(() => {
      heard += 1;
    });
    await expect.poll(feedConnections).toEqual({ open: 1, listening: 1 });
    await expect.poll(() => peer.listening?.()).toBe(true);
    // A server restart, a NAT entry expired: every connection reset. Losing the connection says
    // so, and so does listening again.
    link.reset();
    await expect.poll(() => heard, { timeout: 10_000 }).toBe(1);
    expect(peer.listening?.()).toBe(false);
    await expect.poll(() => heard, { timeout: 10_000 }).toBe(2);
    expect(peer.listening?.()).toBe(true);
    const other = notifier();
    await other`notify cv_sync_change`;
    await expect.poll(() => heard).toBe(3);
    await other.end();
    // The server stays away: the feed says it lost it, keeps trying, quietly, without holding up a close.
    await link.refuse();
    link.reset();
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    expect(heard).toBe(4);
    expect(peer.listening?.()).toBe(false);
    const began = Date.now();
    await peer.close();
    expect(Date.now() - began).toBeLessThan(1_000);
    expect(subscription.closed).toBe(true);
    await link.pass();
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    expect(link.stats.active).toBe(0);
    expect(heard).toBe(4);
  });

  it("a peer given a client instead of a url has none (it could not open its own connection)", () => {
    const sql = postgres(pair.clinic.url, { max: 1 });
    const peer = createPostgresPeer({ sql });
    expect(peer.changes$).toBeUndefined();
    return Promise.all([peer.close(), sql.end()]);
  });

  it("an engine starts a cycle as soon as the clinic server notifies, far inside its interval", async () => {
    const engine = pair.engine({ intervalMs: 60_000, wake: true });
    const cycles = countCycles(engine);
    await engine.syncNow();
    // Past the wake gap (1 s).
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    await expect.poll(() => engine.getStatus().phase).toBe("idle");
    const before = cycles.count;
    const other = notifier();
    await other`notify cv_sync_change`;
    await expect.poll(() => cycles.count, { timeout: 2_000 }).toBe(before + 1);
    await other.end();
    await engine.stop();
  });
});

/** A cloud peer whose supabase-js client carries `token`, as the daemon's signed-in node does. */
async function cloudPeerAs(token: string): Promise<SyncPeer> {
  const client = await supabaseClientAs(pair.cloud.supabase, token);
  return createSupabasePeer({
    url: pair.cloud.supabase.url,
    client: { rpc: (fn, args) => client.rpc(fn, args), realtimeClient: async () => client as never },
    timeoutMs: 5_000,
  });
}

describe("the cloud's wake-ups (Realtime)", () => {
  it("reach a clinic server's node credential with the origins and scopes only; a person's token hears nothing", async () => {
    const supabase = pair.cloud.supabase;
    const node = await cloudPeerAs(
      await supabase.mintUserToken(randomUUID(), {
        app_metadata: { provider: "email", providers: ["email"], centrovision_node: "Clínica Roma" },
      }),
    );
    const person = await cloudPeerAs(await supabase.mintUserToken(randomUUID()));
    const heard: { node: ChangeNotice[]; person: ChangeNotice[] } = { node: [], person: [] };
    const subscriptions = [
      node.changes$?.subscribe((n) => heard.node.push(n)),
      person.changes$?.subscribe((n) => heard.person.push(n)),
    ];
    const base = consultation();
    await insertConsultation(pair.cloud.sql, base);
    // Joining takes a round trip or two; until then a write is not heard (the polling covers it).
    await expect
      .poll(
        async () => {
          await insert(pair.cloud.sql, "patients", patient(base.branches.id, "Señal"));
          return heard.node.length;
        },
        { interval: 300, timeout: 10_000 },
      )
      .toBeGreaterThan(0);
    const [cloudNode] = await pair.cloud.sql<{ node_id: string }[]>`select node_id from cv_sync.node`;
    // Which nodes and scopes (branches) the changes concern; never a row or a table.
    expect(heard.node[0]).toEqual({ origins: [cloudNode?.node_id], scopes: expect.any(Array) });
    expect(heard.person).toEqual([]);
    for (const subscription of subscriptions) subscription?.unsubscribe();
    await Promise.all([node.close(), person.close()]);
  });

  it("a peer made with a key closes its Realtime socket on close(), not a minute later", async () => {
    const sockets: GatewayUpgradeRecord["socket"][] = [];
    const onUpgrade = (record: unknown) => sockets.push((record as GatewayUpgradeRecord).socket);
    subscribe(GATEWAY_UPGRADE_CHANNEL, onUpgrade);
    try {
      const peer = createSupabasePeer({
        url: pair.cloud.supabase.url,
        key: pair.cloud.supabase.serviceRoleKey,
        timeoutMs: 5_000,
      });
      const listening = peer.changes$?.subscribe(() => {});
      await expect.poll(() => peer.listening?.(), { timeout: 10_000 }).toBe(true);
      expect(sockets).toHaveLength(1);
      listening?.unsubscribe();
      await peer.close();
      // supabase-js alone disconnects an empty socket after two heartbeats (about 50 s), which
      // held an engine's process that long after it had stopped.
      await expect.poll(() => sockets[0]?.destroyed, { timeout: 3_000 }).toBe(true);
    } finally {
      unsubscribe(GATEWAY_UPGRADE_CHANNEL, onUpgrade);
    }
  });

  it("a write on the cloud reaches the clinic server in well under its interval; the clinic's own push wakes nothing", async () => {
    const engine = pair.engine({ intervalMs: 60_000, wake: true });
    const cycles = countCycles(engine);
    const base = consultation();
    await insertConsultation(pair.cloud.sql, base);
    await engine.syncNow();
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    await expect.poll(() => engine.getStatus().phase).toBe("idle");
    const row = patient(base.branches.id, "Despertar");
    const before = cycles.count;
    const written = Date.now();
    await insert(pair.cloud.sql, "patients", row);
    await expect
      .poll(() => rowOf(pair.clinic.sql, "patients", row.id as string), { timeout: 5_000 })
      .toBeDefined();
    const arrived = Date.now() - written;
    expect(arrived).toBeLessThan(5_000);
    expect(cycles.count).toBe(before + 1);
    // The clinic's write: its NOTIFY starts a cycle that pushes it; the cloud's broadcast of that
    // push names the clinic server as its only origin, which starts no further cycle.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const mine = patient(base.branches.id, "Eco propio");
    const pushed = cycles.count;
    await insert(pair.clinic.sql, "patients", mine);
    await expect
      .poll(() => rowOf(pair.cloud.sql, "patients", mine.id as string), { timeout: 5_000 })
      .toBeDefined();
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    expect(cycles.count - pushed).toBe(1);
    await engine.stop();
  });

  it("while both feeds listen the engine polls every quietIntervalMs; with Realtime cut or flapping, a cloud write still arrives within intervalMs", async () => {
    const supabase = pair.cloud.supabase;
    // Realtime alone through a link that the test cuts; the calls go straight to the cloud.
    const realtimeLink = await createLink({
      target: { host: "127.0.0.1", port: Number(new URL(supabase.url).port) },
    });
    const [{ createClient }, { default: WebSocket }] = await Promise.all([
      import("@supabase/supabase-js"),
      import("ws"),
    ]);
    const realtime = createClient(realtimeLink.url(supabase.url), supabase.serviceRoleKey, {
      auth: { persistSession: false },
      realtime: { transport: WebSocket as never },
    });
    const direct = createClient(supabase.url, supabase.serviceRoleKey, {
      auth: { persistSession: false },
      realtime: { transport: WebSocket as never },
    });
    const remote = createSupabasePeer({
      url: supabase.url,
      client: { rpc: (fn, args) => direct.rpc(fn, args), realtimeClient: async () => realtime as never },
      timeoutMs: 5_000,
      label: "cloud",
    });
    const local = createPostgresPeer({ url: pair.clinic.url, timeoutMs: 5_000 });
    const engine = createSyncEngine({ local, remote, intervalMs: 1_000, quietIntervalMs: 60_000 });
    const base = consultation();
    await insertConsultation(pair.cloud.sql, base);
    const waitMs = () => Date.parse(engine.getStatus().nextCycleAt ?? "") - Date.now();
    await expect
      .poll(() => local.listening?.() === true && remote.listening?.() === true, { timeout: 10_000 })
      .toBe(true);
    await engine.syncNow();
    await expect.poll(waitMs).toBeGreaterThan(50_000);
    /** Writes a patient on the cloud and resolves with how long it took to reach the clinic server. */
    const arrival = async (name: string) => {
      const row = patient(base.branches.id, name);
      const written = Date.now();
      await insert(pair.cloud.sql, "patients", row);
      await expect
        .poll(() => rowOf(pair.clinic.sql, "patients", row.id as string), { timeout: 10_000, interval: 50 })
        .toBeDefined();
      return Date.now() - written;
    };
    // Heard: far inside the quiet interval.
    expect(await arrival("Oída")).toBeLessThan(1_000);
    // Realtime cut: losing the channel starts a cycle, and from then on the engine polls each second.
    await realtimeLink.refuse();
    realtimeLink.reset();
    await expect.poll(() => remote.listening?.(), { timeout: 5_000 }).toBe(false);
    await expect.poll(waitMs, { timeout: 5_000 }).toBeLessThanOrEqual(1_000);
    const cut = [await arrival("Sin señal 1"), await arrival("Sin señal 2"), await arrival("Sin señal 3")];
    // The interval (1 s) plus one cycle's work.
    expect(Math.max(...cut)).toBeLessThan(2_000);
    // Flapping: joined and lost every 1.5 s, writes still arrive within the interval.
    await realtimeLink.flap(1_500, "refuse");
    const flapping: number[] = [];
    for (let i = 0; i < 4; i++) flapping.push(await arrival(`Intermitente ${i}`));
    expect(Math.max(...flapping)).toBeLessThan(2_000);
    // Back: joined again, and the quiet interval with it.
    await realtimeLink.pass();
    await expect.poll(() => remote.listening?.(), { timeout: 20_000 }).toBe(true);
    await engine.syncNow();
    await expect.poll(waitMs).toBeGreaterThan(50_000);
    await engine.stop();
    await Promise.all([local.close(), remote.close()]);
    await realtime.removeAllChannels();
    await realtimeLink.close();
  });

  it("a clinic's node credential wakes for a cloud write in its scope, not for one in another branch's", async () => {
    const clean = await createSyncPair();
    try {
      const mine = consultation();
      const other = consultation();
      for (const rows of [mine, other]) await insertConsultation(clean.cloud.sql, rows);
      const remote = await clinicNodePeer(clean, [mine.branches.id]);
      const heard: ChangeNotice[] = [];
      const listened = remote.changes$?.subscribe((notice) => heard.push(notice));
      const local = createPostgresPeer({ url: clean.clinic.url, timeoutMs: 10_000 });
      const engine = createSyncEngine({ local, remote, intervalMs: 60_000, quietIntervalMs: 60_000 });
      const cycles = countCycles(engine);
      try {
        expect((await engine.syncNow()).lastError).toBeNull();
        await expect.poll(() => remote.listening?.(), { timeout: 10_000 }).toBe(true);
        await new Promise((resolve) => setTimeout(resolve, 1_500));
        const before = cycles.count;
        await insert(clean.cloud.sql, "patients", patient(other.branches.id, "Otra sucursal"));
        await expect.poll(() => heard.length, { timeout: 5_000 }).toBeGreaterThan(0);
        expect(heard.at(-1)).toMatchObject({ scopes: [other.branches.id] });
        await new Promise((resolve) => setTimeout(resolve, 1_500));
        expect(cycles.count).toBe(before);
        const row = patient(mine.branches.id, "Mi sucursal");
        await insert(clean.cloud.sql, "patients", row);
        await expect
          .poll(() => rowOf(clean.clinic.sql, "patients", row.id as string), { timeout: 5_000 })
          .toBeDefined();
        expect(cycles.count).toBe(before + 1);
        expect(heard.at(-1)).toMatchObject({ scopes: [mine.branches.id] });
      } finally {
        listened?.unsubscribe();
        await engine.stop();
        await Promise.all([local.close(), remote.close()]);
      }
    } finally {
      await clean.close();
    }
  });
});
