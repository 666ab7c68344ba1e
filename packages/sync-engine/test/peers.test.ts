import { randomUUID } from "node:crypto";
import { isCvError } from "@centrovision/core";
import { clinicSession, createLink, type Link } from "@centrovision/testkit";
import { onServer, serverUrl } from "@centrovision/testkit/nodes";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createPostgresPeer,
  createSupabasePeer,
  isSyncError,
  type PostgresClient,
  type SupabaseRpcRequest,
  type SyncPeer,
} from "../src/index.js";
import { START_CURSOR } from "../src/sync-types.js";
import {
  createClinicDatabase,
  createSyncPair,
  type SyncPair,
  supabaseClientAs,
} from "./support/sync-pair.js";

let pair: SyncPair;
let lan: Link;
const closers: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  pair = await createSyncPair();
  lan = await createLink({ target: { host: "127.0.0.1", port: Number(new URL(serverUrl()).port) } });
});

afterAll(async () => {
  for (const close of closers.reverse()) await close();
  await lan.close();
  await pair.close();
});

async function failure(work: () => Promise<unknown>) {
  try {
    await work();
  } catch (error) {
    return error;
  }
  throw new Error("expected a failure");
}

describe.each([
  ["supabase", () => pair.cloudPeer(2_000), () => pair.cloud.nodeId, () => pair.cloud.sql],
  ["postgres", () => pair.clinicPeer(2_000), () => pair.clinic.nodeId, () => pair.clinic.sql],
] as const)("%s peer", (_name, makePeer, nodeId, db) => {
  let peer: SyncPeer;
  beforeAll(() => {
    peer = makePeer();
  });

  it("reads the node's identity, parsed", async () => {
    const node = await peer.node();
    expect(node).toMatchObject({ nodeId: nodeId(), epoch: expect.any(String), maxTxid: expect.any(Number) });
    expect(Object.keys(node.fingerprint)).toContain("patients");
  });

  it("maps a malformed request to invalid_input without quoting what was sent", async () => {
    const error = await failure(() =>
      peer.apply({
        source: { nodeId: randomUUID(), epoch: randomUUID(), fingerprint: {} },
        expected: START_CURSOR,
        cursor: { txid: 0, seq: 1 },
        changes: [{ table: "patients", row_id: "x", row: { first_name: "Guadalupe Secreta" } } as never],
      }),
    );
    expect(isSyncError(error, "invalid_request")).toBe(true);
    expect(isCvError(error, "invalid_input")).toBe(true);
    expect((error as Error).message).not.toContain("Guadalupe");
  });

  it("returns an empty page and a cursor at the horizon for a consumer that is up to date", async () => {
    const page = await peer.pull({ consumer: randomUUID(), after: START_CURSOR, limit: 5 });
    expect(page.cursor.txid).toBeGreaterThan(0);
    expect(page.source.nodeId).toBe(nodeId());
  });

  it("hands over a page of changes as the node's own cv_sync_pull built it", async () => {
    const code = `P-${randomUUID().slice(0, 8).toUpperCase()}`;
    await db()`insert into branches (id, code, name, address) values (gen_random_uuid(), ${code}, 'Sucursal Página', 'Av. Juárez 10')`;
    const consumer = randomUUID();
    const page = await peer.pull({ consumer, after: START_CURSOR, limit: 10_000 });
    const direct = await db()<{ r: unknown }[]>`
      select r::jsonb from cv_sync_pull(${consumer}::uuid, '{"txid":0,"seq":0}'::jsonb, 10000) r`;
    expect(page.changes).toEqual(direct.slice(1).flatMap((row) => row.r as unknown[]));
    expect(page.changes.some((c) => c.table === "branches" && c.row.code === code)).toBe(true);
  });
});

describe("supabase peer faults", () => {
  it("is unauthorized with a key that is not the project's", async () => {
    const peer = createSupabasePeer({ url: pair.cloud.supabase.url, key: "not-a-jwt", timeoutMs: 2_000 });
    closers.push(() => peer.close());
    expect(await failure(() => peer.node())).toMatchObject({ code: "unauthorized" });
  });

  it("cannot call the sync functions with a signed-in user's token (no EXECUTE)", async () => {
    const token = await pair.cloud.supabase.mintUserToken(randomUUID());
    const client = await supabaseClientAs(pair.cloud.supabase, token);
    const peer = createSupabasePeer({ url: pair.cloud.supabase.url, client, timeoutMs: 2_000 });
    expect(await failure(() => peer.node())).toMatchObject({ code: "unauthorized" });
  });

  it("times out at its deadline when the internet is blackholed, and works again once it is back", async () => {
    const peer = pair.cloudPeer(300);
    await pair.cloud.link.blackhole();
    // Its own deadline, not a later one of the driver's.
    expect(await failure(() => peer.node())).toMatchObject({
      code: "timeout",
      message: expect.stringContaining("timed out after 300 ms"),
    });
    await pair.cloud.link.pass();
    let answered = false;
    for (let i = 0; i < 3 && !answered; i++)
      answered = await peer.node().then(
        () => true,
        () => false,
      );
    expect(answered).toBe(true);
  });

  it("takes a project that is not serving for unreachable, as the data source does", async () => {
    for (const [code, status] of [
      ["53100", 500],
      ["57P02", 503],
      ["PGRST000", 503],
      ["", 525],
      ["", 530],
      ["", 0],
    ] as const) {
      const answer = { data: null, error: { code, message: "not serving" }, status };
      const request: SupabaseRpcRequest = {
        abortSignal: () => request,
        retry: () => request,
        // biome-ignore lint/suspicious/noThenProperty: a supabase-js request is a thenable
        then: (resolve, reject) => Promise.resolve(answer).then(resolve, reject),
      };
      const peer = createSupabasePeer({ url: "https://example.supabase.co", client: { rpc: () => request } });
      expect(await failure(() => peer.node()), `${code} ${status}`).toMatchObject({ code: "unavailable" });
      await peer.close();
    }
  });

  it("is unavailable, not timed out, when the connection is refused", async () => {
    const peer = pair.cloudPeer(5_000);
    await pair.cloud.link.refuse();
    try {
      // Waiting the refusal out would end at the deadline: timeout.
      expect(await failure(() => peer.node())).toMatchObject({
        code: "unavailable",
        message: expect.stringContaining("cannot reach"),
      });
    } finally {
      await pair.cloud.link.pass();
    }
  });
});

describe("postgres peer faults", () => {
  it("times out on a blackholed LAN, replaces its pool, and works again once the LAN is back", async () => {
    const peer = createPostgresPeer({ url: lan.url(pair.clinic.url), timeoutMs: 500 });
    closers.push(() => peer.close());
    await peer.node();
    await lan.blackhole();
    expect(await failure(() => peer.node())).toMatchObject({ code: "timeout" });
    await lan.pass();
    expect((await peer.node()).nodeId).toBe(pair.clinic.nodeId);
  });

  it("a cancel request cut by the link is no unhandled rejection (it would stop the process)", async () => {
    const peer = createPostgresPeer({ url: lan.url(pair.clinic.url), timeoutMs: 500 });
    closers.push(() => peer.close());
    await peer.node();
    await lan.blackhole();
    const { accepted } = lan.stats;
    // The deadline passes: the peer sends the statement's cancel request on a new connection.
    expect(await failure(() => peer.node())).toMatchObject({ code: "timeout" });
    await expect.poll(() => lan.stats.accepted).toBe(accepted + 1);
    // Every connection across the link is reset, the cancel request's too: vitest fails the run
    // on an unhandled rejection.
    lan.reset();
    await expect.poll(() => lan.stats.active).toBe(0);
    await lan.pass();
    expect((await peer.node()).nodeId).toBe(pair.clinic.nodeId);
  });

  it("is unauthorized for a PC's login outside centrovision_sync, alone or as a signed-in person", async () => {
    const user = `cv_app_only_${randomUUID().slice(0, 6)}`;
    await onServer(`create role ${user} login password 'app-only' in role centrovision_app`);
    closers.push(() => onServer(`drop role if exists ${user}`));
    const url = new URL(pair.clinic.url);
    url.username = user;
    url.password = "app-only";
    const owner = new URL(serverUrl());
    owner.pathname = `/${pair.clinic.database}`;
    const token = await clinicSession(owner.href, { userId: randomUUID() });
    for (const session of [undefined, () => token]) {
      const peer = createPostgresPeer({ url: url.href, timeoutMs: 2_000, ...(session && { session }) });
      closers.push(() => peer.close());
      expect(await failure(() => peer.node())).toMatchObject({
        code: "unauthorized",
        message: expect.stringContaining("this login may not call the sync functions"),
      });
    }
  });

  it("takes a server that is not serving for unreachable, as the data source does, and replaces its client", async () => {
    for (const state of ["57P01", "57P02", "57P03", "53300", "08006"]) {
      let made = 0;
      const failing = (): PostgresClient => {
        made++;
        const refused = Promise.reject(
          new postgres.PostgresError({ code: state, message: "not serving" } as never),
        );
        refused.catch(() => {});
        return {
          unsafe: () => Object.assign(refused, { cancel: () => null }),
          end: async () => {},
        };
      };
      const peer = createPostgresPeer({ sql: failing, timeoutMs: 2_000 });
      expect(await failure(() => peer.node()), state).toMatchObject({ code: "unavailable" });
      await failure(() => peer.node());
      expect(made, state).toBe(2);
      await peer.close();
    }
  });

  it("uses an injected client as is and never closes it", async () => {
    const sql = postgres(pair.clinic.url, { max: 1, onnotice: () => {} });
    closers.push(() => sql.end());
    const peer = createPostgresPeer({ sql, timeoutMs: 2_000 });
    await peer.node();
    await peer.close();
    expect(await sql`select 1 as one`).toEqual([{ one: 1 }]);
  });

  it("rejects a reply that does not have the protocol's shape", async () => {
    const { database, url } = await createClinicDatabase();
    closers.push(() => onServer(`drop database if exists "${database}" with (force)`));
    const sql = postgres(url, { max: 1, onnotice: () => {} });
    await sql`create schema impostor`;
    await sql.unsafe(`create function impostor.cv_sync_node() returns jsonb language sql
      as $$ select '{"node_id": "not-a-uuid", "epoch": 1}'::jsonb $$`);
    await sql`alter function public.cv_sync_node() rename to cv_sync_node_real`;
    await sql`alter function impostor.cv_sync_node() set schema public`;
    await sql.end();
    const peer = createPostgresPeer({ url, timeoutMs: 2_000 });
    closers.push(() => peer.close());
    const error = await failure(() => peer.node());
    expect(error).toMatchObject({ code: "unknown", message: expect.stringContaining("malformed reply") });
  });
});

describe("options", () => {
  it("lists every problem with its path", () => {
    expect(() => createPostgresPeer({ timeoutMs: -1 } as never)).toThrow(
      /url: give exactly one of url or sql.*|timeoutMs/,
    );
    expect(() => createSupabasePeer({ url: "not a url" } as never)).toThrow(
      /invalid supabase peer options: url: .*key/,
    );
  });
});
