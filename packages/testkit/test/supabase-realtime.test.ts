import { randomUUID } from "node:crypto";
import {
  createClient,
  type RealtimeChannel,
  type RealtimeClientOptions,
  type SupabaseClient,
} from "@supabase/supabase-js";
import { SignJWT } from "jose";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { SUPABASE_SUPERUSER, startLocalSupabase, startPostgres } from "../src/index.js";
import { generateSigningKey } from "../src/supabase/signing-key.js";
import { FIXTURE_DIR, FIXTURE_SQL, type Harness, startHarness } from "./fixtures/supabase/harness.js";

const BACKOFF_MS = 200;
/** What a node credential may read: its own topic, `node:<its user id>`, as sql/ would grant. */
const POLICIES_SQL = `
  create policy nodes_read_own_topic on realtime.messages for select to authenticated
    using (realtime.topic() = 'node:' || auth.uid()::text and extension = 'broadcast');
  -- A trigger as the cloud's migrations write one: SECURITY DEFINER, so the REST user's write
  -- sends as postgres (BYPASSRLS) rather than as the user.
  create function public.todo_wake() returns trigger language plpgsql security definer
    set search_path = '' as $$
  begin
    perform realtime.send(jsonb_build_object('todo', new.title), 'todo_added', 'node:' || new.owner::text);
    return new;
  end
  $$;
  create trigger todo_wake after insert on public.todos for each row execute function public.todo_wake();
  create function public.send_as_caller(topic text) returns void language sql as $$
    select realtime.send('{"from": "caller"}', 'changes', topic)
  $$;`;

let h: Harness;

beforeAll(async () => {
  h = await startHarness({ realtimeChannelErrorBackoffMs: BACKOFF_MS });
  // As the project's migrations run: the demoted postgres, not the superuser.
  const owner = postgres(h.stack.postgresUrl, { max: 1, onnotice: () => {} });
  await owner.unsafe(POLICIES_SQL).finally(() => owner.end());
});
afterAll(() => h?.stop());

/** Everything a callback received, and a way to wait for one that matches. */
class Inbox<T> {
  readonly items: T[] = [];
  private waiters: { match: (item: T) => boolean; resolve: (item: T) => void }[] = [];

  readonly add = (item: T) => {
    this.items.push(item);
    const ready = this.waiters.filter((waiter) => waiter.match(item));
    this.waiters = this.waiters.filter((waiter) => !ready.includes(waiter));
    for (const waiter of ready) waiter.resolve(item);
  };

  until(match: (item: T) => boolean, what: string, ms = 5000): Promise<T> {
    const found = this.items.find(match);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
      this.waiters.push({
        match,
        resolve: (item) => {
          clearTimeout(timer);
          resolve(item);
        },
      });
    });
  }
}

type Status = { status: string; message: string | undefined };
type Broadcast = { event: string; payload: Record<string, unknown>; meta?: { id: string } };
const clients: SupabaseClient[] = [];

interface ClientOptions {
  readonly accessToken?: string;
  readonly realtime?: RealtimeClientOptions;
  /** Default: the shared stack's. */
  readonly url?: string;
}

/**
 * supabase-js as the daemon uses it. With `accessToken`, supabase-js hands Realtime the token
 * asynchronously: a channel subscribed before that joins with the apikey's role, so the token is
 * awaited first, as a caller must.
 */
async function client(key: string, { accessToken, realtime, url = h.stack.url }: ClientOptions = {}) {
  const made = createClient(url, key, {
    realtime: { transport: WebSocket as never, ...realtime },
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    ...(accessToken !== undefined && { accessToken: async () => accessToken }),
  });
  clients.push(made);
  if (accessToken !== undefined) await made.realtime.setAuth(accessToken);
  return made;
}

/** A user's client, as the daemon signs in with a node credential's token. */
const asUser = (accessToken: string, realtime: RealtimeClientOptions = {}) =>
  client(h.stack.anonKey, { accessToken, realtime });

afterAll(() => Promise.all(clients.map((made) => made.removeAllChannels())));

/** Subscribes to `topic`, recording the statuses, broadcasts and system messages it gets. */
function listen(from: SupabaseClient, topic: string, isPrivate: boolean) {
  const statuses = new Inbox<Status>();
  const broadcasts = new Inbox<Broadcast>();
  const system = new Inbox<Record<string, unknown>>();
  const channel: RealtimeChannel = from
    .channel(topic, { config: { private: isPrivate } })
    .on("broadcast", { event: "*" }, (message) => broadcasts.add(message as unknown as Broadcast))
    .on("system", {}, (message) => system.add(message))
    .subscribe((status, error) => statuses.add({ status, message: error?.message }));
  const subscribed = () => statuses.until((s) => s.status === "SUBSCRIBED", `SUBSCRIBED on ${topic}`);
  const refused = () => statuses.until((s) => s.status === "CHANNEL_ERROR", `CHANNEL_ERROR on ${topic}`);
  return { channel, statuses, broadcasts, system, subscribed, refused };
}

async function send(topic: string, payload: object, isPrivate = true) {
  await h.sql`select realtime.send(${h.sql.json(payload as never)}, 'changes', ${topic}, ${isPrivate})`;
}

/** A node credential: a real Auth user, signed in as the daemon signs in. */
async function signedInNode() {
  const email = `node-${randomUUID()}@clinic.example`;
  const { id } = await h.stack.createUser({ email, password: "a long password" });
  const node = await client(h.stack.anonKey);
  const { error } = await node.auth.signInWithPassword({ email, password: "a long password" });
  expect(error).toBeNull();
  return { id, node, topic: `node:${id}` };
}

describe("Broadcast from the database to a private channel", () => {
  it("delivers realtime.send from SQL to the signed-in node its policy lets read, payload intact", async () => {
    const { node, topic } = await signedInNode();
    const inbox = listen(node, topic, true);
    await inbox.subscribed();
    const payload = {
      tables: ["patients", "encounters"],
      since: 1733400000123,
      note: "Ñandú: ojo izq. 20/40",
    };
    await send(topic, payload);
    const received = await inbox.broadcasts.until(() => true, "the broadcast", 2000);
    // realtime.send adds the message's id to a payload without one; it is also the meta id.
    expect(received).toEqual({
      type: "broadcast",
      event: "changes",
      payload: { ...payload, id: received.meta?.id },
      meta: { id: expect.stringMatching(/^[0-9a-f-]{36}$/) },
    });
    await send(topic, { id: "own id", n: 2 });
    const second = await inbox.broadcasts.until((b) => b.payload.n === 2, "the second broadcast");
    expect(second.payload).toEqual({ id: "own id", n: 2 });
  });

  it("delivers what a SECURITY DEFINER trigger sends when a user writes through the REST API", async () => {
    const { id, node, topic } = await signedInNode();
    const inbox = listen(node, topic, true);
    await inbox.subscribed();
    const writer = await asUser(await h.stack.mintUserToken(id));
    expect((await writer.from("todos").insert({ title: "refill the tonometer" })).error).toBeNull();
    const received = await inbox.broadcasts.until(() => true, "the trigger's broadcast");
    expect([received.event, received.payload.todo]).toEqual(["todo_added", "refill the tonometer"]);
  });

  it("does not deliver realtime.send run as a user that no insert policy lets write, as Supabase", async () => {
    const { id, node, topic } = await signedInNode();
    const inbox = listen(node, topic, true);
    await inbox.subscribed();
    const caller = await asUser(await h.stack.mintUserToken(id));
    // realtime.send swallows the row-level security error as a warning: the call succeeds.
    expect((await caller.rpc("send_as_caller", { topic })).error).toBeNull();
    await send(topic, { marker: true });
    const first = await inbox.broadcasts.until(() => true, "the marker");
    expect(first.payload.marker).toBe(true);
    expect(inbox.broadcasts.items).toHaveLength(1);
  });

  it("refuses a user the policy does not allow, after the backoff, and delivers it nothing", async () => {
    const { node, topic } = await signedInNode();
    const stranger = await asUser(await h.stack.mintUserToken(randomUUID()));
    const mine = listen(node, topic, true);
    await mine.subscribed();
    const started = performance.now();
    const theirs = listen(stranger, topic, true);
    const refusal = await theirs.refused();
    expect(performance.now() - started).toBeGreaterThanOrEqual(BACKOFF_MS - 5);
    expect(refusal.message).toBe(
      `Unauthorized: You do not have permissions to read from this Channel topic: ${topic}`,
    );
    await send(topic, { for: "the node only" });
    await mine.broadcasts.until(() => true, "the node's broadcast");
    // Same socket, later frame: once this join is answered, a wrongly sent broadcast would have arrived.
    await listen(stranger, `barrier:${randomUUID()}`, false).subscribed();
    expect(theirs.broadcasts.items).toEqual([]);
  });

  it("keeps a topic's private and public channels apart, as realtime.send's last argument says", async () => {
    const { node, topic } = await signedInNode();
    const privately = listen(node, topic, true);
    const publicly = listen(await client(h.stack.anonKey), topic, false);
    await Promise.all([privately.subscribed(), publicly.subscribed()]);
    await send(topic, { n: 1 }, true);
    await send(topic, { n: 2 }, false);
    await send(topic, { n: 3 }, true);
    await privately.broadcasts.until((b) => b.payload.n === 3, "the third broadcast");
    await publicly.broadcasts.until((b) => b.payload.n === 2, "the public broadcast");
    expect(privately.broadcasts.items.map((b) => b.payload.n)).toEqual([1, 3]);
    expect(publicly.broadcasts.items.map((b) => b.payload.n)).toEqual([2]);
  });

  it("speaks the 1.0.0 JSON serializer as well as 2.0.0's binary broadcasts", async () => {
    const { id, topic } = await signedInNode();
    const legacy = listen(await asUser(await h.stack.mintUserToken(id), { vsn: "1.0.0" }), topic, true);
    await legacy.subscribed();
    await send(topic, { n: 1 });
    const received = await legacy.broadcasts.until(() => true, "the broadcast");
    expect(received).toEqual({
      type: "broadcast",
      event: "changes",
      payload: { n: 1, id: received.meta?.id },
      meta: { id: received.meta?.id },
    });
  });
});

describe("tokens", () => {
  async function upgrade(query: string) {
    const ws = new WebSocket(`${h.stack.url.replace("http", "ws")}/realtime/v1/websocket${query}`);
    ws.on("error", () => {});
    return new Promise<{ status: number | undefined; body: string }>((resolve) => {
      ws.on("unexpected-response", (request, response) => {
        let body = "";
        response.on("data", (chunk: Buffer) => (body += chunk.toString()));
        response.on("end", () => resolve({ status: response.statusCode, body }));
        response.on("close", () => request.destroy());
      });
    });
  }

  it("refuses the socket without a project apikey, or with a transport version it does not serve", async () => {
    expect(await upgrade("?vsn=2.0.0")).toEqual({
      status: 401,
      body: JSON.stringify({
        message: "No API key found in request",
        hint: "No `apikey` request header or url param was found.",
      }),
    });
    expect(await upgrade("?apikey=not-a-key&vsn=2.0.0")).toEqual({
      status: 401,
      body: JSON.stringify({
        message: "Invalid API key",
        hint: "Double check your Supabase `anon` or `service_role` API key.",
      }),
    });
    expect(await upgrade(`?apikey=${h.stack.anonKey}&vsn=3.0.0`)).toEqual({ status: 403, body: "" });
    // What a caller of supabase-js sees of it: the channel errors (and the socket keeps retrying).
    const refused = listen(await client("not-a-key"), `anything:${randomUUID()}`, false);
    expect((await refused.refused()).message).toBe("channel error: transport failure");
  });

  it("refuses a join with an expired token, another key's signature, an unknown kid or no exp", async () => {
    const sub = randomUUID();
    const kid = h.stack.jwks.keys[0]?.kid ?? "";
    const other = await generateSigningKey();
    const claims = { sub, role: "authenticated", aud: "authenticated" };
    const tokens = {
      expired: await h.stack.mintUserToken(sub, {}, { expiresIn: -60 }),
      forged: await new SignJWT({ ...claims, exp: Math.floor(Date.now() / 1000) + 60 })
        .setProtectedHeader({ alg: "ES256", kid })
        .sign(other.privateKey),
      unknownKid: await new SignJWT({ ...claims, exp: Math.floor(Date.now() / 1000) + 60 })
        .setProtectedHeader({ alg: "ES256", kid: other.kid })
        .sign(other.privateKey),
      noExp: await new SignJWT(claims)
        .setProtectedHeader({ alg: "HS256" })
        .sign(new TextEncoder().encode(h.stack.jwtSecret)),
    };
    const reasons = await Promise.all(
      Object.values(tokens).map(
        async (token) => (await listen(await asUser(token), `node:${sub}`, true).refused()).message,
      ),
    );
    expect(reasons).toEqual([
      expect.stringMatching(/^InvalidJWTToken: Token has expired 6\d seconds ago$/),
      "JwtSignatureError: Failed to validate JWT signature",
      `JwtSignerError: Failed to generate JWT signer for key ID (kid) "${other.kid}", check your JWT secret or JWKS configuration`,
      "InvalidJWTToken: Fields `role` and `exp` are required in JWT",
    ]);
  });

  it("closes a channel when its token expires, unless the client sent a fresh one", async () => {
    const { id, topic } = await signedInNode();
    const refreshing = await asUser(await h.stack.mintUserToken(id, {}, { expiresIn: 2 }));
    const refreshed = listen(refreshing, topic, true);
    const expiring = listen(await asUser(await h.stack.mintUserToken(id, {}, { expiresIn: 3 })), topic, true);
    await Promise.all([refreshed.subscribed(), expiring.subscribed()]);
    // What supabase-js does on TOKEN_REFRESHED: the new token goes to every joined channel.
    await refreshing.realtime.setAuth(await h.stack.mintUserToken(id));
    // The refreshed channel's first token expires at least a second before the other one's.
    const closed = await expiring.statuses.until((s) => s.status === "CLOSED", "CLOSED", 5000);
    expect(closed.message).toBeUndefined();
    expect(expiring.system.items).toEqual([
      {
        extension: "system",
        status: "error",
        message: expect.stringMatching(/^Token has expired [01] seconds ago$/),
        channel: topic,
      },
    ]);
    await send(topic, { after: "expiry" });
    await refreshed.broadcasts.until(() => true, "a broadcast after the first token expired");
    expect(refreshed.statuses.items.map((s) => s.status)).toEqual(["SUBSCRIBED"]);
  });
});

describe("the socket", () => {
  it("answers heartbeats, so the socket outlives the client's heartbeat timeout", async () => {
    const beats = new Inbox<string>();
    const realtime = { heartbeatIntervalMs: 100, heartbeatCallback: beats.add };
    const fast = await client(h.stack.anonKey, { realtime });
    const inbox = listen(fast, `beat:${randomUUID()}`, false);
    await inbox.subscribed();
    const fifthOk = () => beats.items.filter((status) => status === "ok").length >= 5;
    await beats.until(fifthOk, "five heartbeat replies");
    expect(beats.items.filter((status) => status !== "sent" && status !== "ok")).toEqual([]);
    expect(inbox.statuses.items.map((s) => s.status)).toEqual(["SUBSCRIBED"]);
  });

  it("refuses what it does not serve: Presence, Postgres Changes, client broadcasts, the REST API", async () => {
    const anon = await client(h.stack.anonKey);
    const presence = anon.channel(`p:${randomUUID()}`).on("presence", { event: "sync" }, () => {});
    const changes = anon
      .channel(`c:${randomUUID()}`)
      .on("postgres_changes", { event: "*", schema: "public", table: "todos" }, () => {});
    const reasons = await Promise.all(
      [presence, changes].map((channel) => {
        const statuses = new Inbox<Status>();
        channel.subscribe((status, error) => statuses.add({ status, message: error?.message }));
        return statuses.until((s) => s.status === "CHANNEL_ERROR", "CHANNEL_ERROR");
      }),
    );
    expect(reasons.map((r) => r.message)).toEqual([
      "NotImplemented: Presence is not served by the local Realtime; only Broadcast is",
      "NotImplemented: Postgres Changes are not served by the local Realtime; use Broadcast from the database (realtime.send)",
    ]);
    const talker = listen(anon, `b:${randomUUID()}`, false);
    await talker.subscribed();
    await talker.channel.send({ type: "broadcast", event: "hello", payload: {} });
    await talker.statuses.until((s) => s.status === "CLOSED", "CLOSED");
    expect(talker.system.items[0]?.message).toBe(
      "Broadcast from clients is not served by the local Realtime: only Broadcast from the database (realtime.send) is",
    );
    await expect(talker.channel.httpSend("hello", {})).rejects.toThrow(/is not served by the local Realtime/);
  });
});

describe("a gateway that stops", () => {
  it("closes its sockets, and the client rejoins a gateway restarted on the same port", async () => {
    const server = await startPostgres({ superuser: SUPABASE_SUPERUSER });
    const options = {
      migrationsDir: FIXTURE_DIR,
      sqlFiles: [FIXTURE_SQL],
      postgres: server,
      database: "cv_realtime_restart",
      jwtSecret: h.stack.jwtSecret,
      log: () => {},
    };
    let stack = await startLocalSupabase(options);
    try {
      const owner = postgres(stack.postgresUrl, { max: 1, onnotice: () => {} });
      await owner.unsafe(POLICIES_SQL).finally(() => owner.end());
      const sub = randomUUID();
      // HS256 with the shared secret: still valid once the restarted stack has a new signing key.
      const token = await stack.mintToken({ sub, role: "authenticated", aud: "authenticated" });
      const realtime = { reconnectAfterMs: () => 100 };
      const node = await client(stack.anonKey, { accessToken: token, realtime, url: stack.url });
      const inbox = listen(node, `node:${sub}`, true);
      await inbox.subscribed();
      await stack.stop();
      const closed = await inbox.refused();
      expect(closed.message).toBe("socket closed: 1012 (Service Restart)");
      stack = await startLocalSupabase({ ...options, port: Number(new URL(stack.url).port) });
      const rejoined = (s: Status) =>
        s.status === "SUBSCRIBED" && inbox.statuses.items.indexOf(s) > inbox.statuses.items.indexOf(closed);
      await inbox.statuses.until(rejoined, "SUBSCRIBED again", 10_000);
      const sql = postgres(stack.dbUrl, { max: 1, onnotice: () => {} });
      await sql`select realtime.send('{"back": true}', 'changes', ${`node:${sub}`})`.finally(() => sql.end());
      const back = await inbox.broadcasts.until(() => true, "a broadcast from the new gateway");
      expect(back.payload).toMatchObject({ back: true });
    } finally {
      await stack.stop();
      await server.stop();
    }
  });
});
