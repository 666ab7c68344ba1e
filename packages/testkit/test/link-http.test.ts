import { once } from "node:events";
import { createServer, type Server } from "node:http";
import { createClient, type WebSocketLikeConstructor } from "@supabase/supabase-js";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { createLink, type Link, type LocalSupabase, startLocalSupabase } from "../src/index.js";

// The cloud tier as the router will see it: HTTP through the link. Node's fetch talks to a tiny
// stand-in server (so the test can count what reached it); supabase-js talks to the real local
// Supabase gateway. Nothing here is timed: a hang shows as the caller's abort signal firing
// (TimeoutError), and a refusal as ECONNREFUSED well inside a longer signal, which it would
// otherwise have waited out.
const ROWS = [{ id: "7f1c2a7e-0000-4000-8000-000000000001", name: "Ana" }];
let server: Server;
let served = 0;
let origin: string;
let link: Link;

beforeAll(async () => {
  server = createServer((request, response) => {
    served++;
    const ok = request.url?.startsWith("/rest/v1/patients");
    response.writeHead(ok ? 200 : 404, { "content-type": "application/json" });
    response.end(JSON.stringify(ok ? ROWS : { code: "PGRST205", message: "not found" }));
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  if (typeof address !== "object" || !address) throw new Error("no address");
  origin = `http://127.0.0.1:${address.port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  server.close();
  await once(server, "close");
});

// A fresh link per test is also a fresh origin, so no keep-alive socket from an earlier test is reused.
beforeEach(async () => {
  link = await createLink({ target: new URL(origin).host });
});

afterEach(async () => {
  await link.close();
});

const get = (signal: AbortSignal) => fetch(`${link.url(origin)}/rest/v1/patients`, { signal });

describe("link with fetch", () => {
  it("pass: a request goes through", async () => {
    const response = await get(AbortSignal.timeout(2000));
    expect(await response.json()).toEqual(ROWS);
    expect(link.stats.accepted).toBe(1);
  });

  it("blackhole: requests hang until the caller's deadline and nothing reaches the server", async () => {
    await (await get(AbortSignal.timeout(2000))).json();
    const servedBefore = served;
    const before = link.stats;
    await link.blackhole();
    for (let i = 0; i < 2; i++) {
      await expect(get(AbortSignal.timeout(500))).rejects.toMatchObject({ name: "TimeoutError" });
    }
    expect(served).toBe(servedBefore);
    expect(link.stats).toMatchObject({ bytesUp: before.bytesUp, bytesDown: before.bytesDown });
  });

  it("refuse: a request fails with ECONNREFUSED, not at its deadline", async () => {
    await link.refuse();
    await expect(get(AbortSignal.timeout(5000))).rejects.toMatchObject({ cause: { code: "ECONNREFUSED" } });
    expect(link.stats.accepted).toBe(0);
  });
});

describe("link with supabase-js against the local Supabase", () => {
  let cloud: LocalSupabase;
  let cloudLink: Link;
  beforeAll(async () => {
    cloud = await startLocalSupabase();
  });
  afterAll(async () => {
    await cloud.stop();
  });
  beforeEach(async () => {
    cloudLink = await createLink({ target: new URL(cloud.url).host });
  });
  afterEach(async () => {
    await cloudLink.close();
  });

  function select() {
    const client = createClient(cloudLink.url(cloud.url), cloud.serviceRoleKey, {
      // Node 20 has no global WebSocket and createClient throws without one. ws's typings (its first
      // overload is the server-side `address: null`) do not fit realtime-js's, though the class does.
      realtime: { transport: WebSocket as unknown as WebSocketLikeConstructor },
      auth: { persistSession: false, autoRefreshToken: false },
    });
    // postgrest-js retries GETs on network errors with 1/2/4 s back-off; a caller that must see a
    // failure at once turns that off.
    return (deadlineMs: number) =>
      client.from("branches").select("id").retry(false).abortSignal(AbortSignal.timeout(deadlineMs));
  }

  it("pass, blackhole until the abort signal, refused without waiting it out, then pass again", async () => {
    const query = select();
    expect(await query(2000)).toMatchObject({ data: [], error: null, status: 200 });

    await cloudLink.blackhole();
    expect(await query(500)).toMatchObject({
      data: null,
      status: 0,
      error: { message: expect.stringMatching(/^TimeoutError/) },
    });

    await cloudLink.refuse();
    // A kept-alive socket from the first request gets RST (ECONNRESET), a new one ECONNREFUSED:
    // either way not the TimeoutError of waiting out the signal.
    const details = expect.stringMatching(/ECONNREFUSED|ECONNRESET/);
    expect(await query(5000)).toMatchObject({ data: null, status: 0, error: { details } });

    await cloudLink.pass();
    expect(await query(2000)).toMatchObject({ data: [], error: null, status: 200 });
  });
});
