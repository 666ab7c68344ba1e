import { randomBytes } from "node:crypto";
import { consultation, insert, insertConsultation, patient } from "@centrovision/testkit/nodes";
import { createClient } from "@supabase/supabase-js";
import postgres from "postgres";
import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import {
  createPostgresPeer,
  createSupabasePeer,
  createSyncEngine,
  postRpcBytes,
  rpcRequest,
  type SyncEngine,
  type SyncPeer,
} from "../src/index.js";
import { checksums, createSyncPair, type SyncPair } from "./support/sync-pair.js";

let pair: SyncPair | undefined;
const engines: SyncEngine[] = [];

afterEach(async () => {
  await Promise.all(engines.splice(0).map((engine) => engine.stop()));
  await pair?.close();
  pair = undefined;
});

/**
 * The cloud as a node whose sql/ functions list only `formats` (undefined: they predate the
 * positional batch and list none).
 */
function olderNode(peer: SyncPeer, formats?: string[]): SyncPeer {
  return {
    ...peer,
    node: async (options) => {
      const { applyFormats: _, ...info } = await peer.node(options);
      return formats === undefined ? info : { ...info, applyFormats: formats };
    },
  };
}

/** An engine between the pair's clinic server and `remote`, syncing when told. */
function engineTo(node: SyncPair, remote: SyncPeer): SyncEngine {
  const engine = createSyncEngine({
    local: { ...node.clinicPeer(), changes$: undefined },
    remote: { ...remote, changes$: undefined },
    intervalMs: 60_000,
  });
  engines.push(engine);
  return engine;
}

/**
 * Bytes the engine sent the cloud over the link while it pushed `rows` new patients of `branchId`,
 * all in one cycle; `notes` gives each its notes.
 */
async function pushBytes(
  node: SyncPair,
  engine: SyncEngine,
  branchId: string,
  rows: number,
  notes?: () => string,
): Promise<number> {
  const written = Array.from({ length: rows }, (_, i) => ({
    ...patient(branchId, `Paciente ${i}`),
    ...(notes && { notes: notes() }),
  }));
  for (const row of written) await insert(node.clinic.sql, "patients", row);
  const arrived = async () => {
    const [found] = await node.cloud.sql<{ n: number }[]>`
      select count(*)::int as n from patients where id = any(${written.map((row) => row.id)}::uuid[])`;
    return found?.n;
  };
  expect(await arrived()).toBe(0);
  const before = node.cloud.link.stats.bytesUp;
  expect(await engine.syncNow()).toMatchObject({ lastError: null, pendingUp: 0 });
  expect(await arrived()).toBe(rows);
  return node.cloud.link.stats.bytesUp - before;
}

describe("the push to the cloud over HTTP", () => {
  it("goes deflated to a cloud that lists it, else as positional batches, else as the array an older cloud gets, each smaller than the next", async () => {
    pair = await createSyncPair();
    const base = consultation();
    await insertConsultation(pair.cloud.sql, base);
    const bytes: Record<string, number> = {};
    for (const [form, cloud] of [
      ["deflated", pair.cloudPeer()],
      ["positional", olderNode(pair.cloudPeer(), ["array", "positional"])],
      ["array", olderNode(pair.cloudPeer())],
    ] as const) {
      const engine = engineTo(pair, cloud);
      // Its first cycle starts at once: over before the rows are written, it pushes none of them.
      expect((await engine.syncNow()).lastError).toBeNull();
      bytes[form] = await pushBytes(pair, engine, base.branches.id, 100);
      await engine.stop();
    }
    expect(await checksums(pair.clinic.sql)).toEqual(await checksums(pair.cloud.sql));
    expect(bytes.positional).toBeLessThan((bytes.array ?? 0) * 0.7);
    expect(bytes.deflated).toBeLessThan((bytes.positional ?? 0) * 0.5);
  });

  it("deflated, carries the array of changes, which the cloud reads without building each row from its values", async () => {
    pair = await createSyncPair();
    const base = consultation();
    await insertConsultation(pair.cloud.sql, base);
    const { supabase, link } = pair.cloud;
    const url = link.url(supabase.url);
    const key = supabase.serviceRoleKey;
    const client = createClient(url, key, {
      auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
      realtime: { transport: WebSocket as never },
    });
    const bodies: Uint8Array<ArrayBuffer>[] = [];
    const capturing = createSupabasePeer({
      url,
      label: "cloud",
      client: {
        rpc: (fn, args) => client.rpc(fn, args),
        rpcBytes: (fn, body) => {
          bodies.push(body);
          return rpcRequest((signal) => postRpcBytes({ url, key, token: key, fn, body, signal }));
        },
      },
    });
    try {
      const engine = engineTo(pair, capturing);
      expect((await engine.syncNow()).lastError).toBeNull();
      await pushBytes(pair, engine, base.branches.id, 100);
    } finally {
      await capturing.close();
    }
    // Each body as the cloud opens it: the form of p_changes, and how many changes it holds.
    const read: { form: string; changes: number }[] = [];
    for (const body of bodies) {
      const [opened] = await pair.cloud.sql<{ form: string; changes: number }[]>`
        select jsonb_typeof(c) as form, case when jsonb_typeof(c) = 'array' then jsonb_array_length(c) end as changes
        from (select convert_from(cv_sync.inflate(${Buffer.from(body)}::bytea), 'UTF8')::jsonb -> 'p_changes' as c) x`;
      if (opened) read.push(opened);
    }
    expect(read.length).toBeGreaterThan(0);
    expect(read.every((body) => body.form === "array")).toBe(true);
    expect(read.some((body) => body.changes === 100)).toBe(true);
    expect(await checksums(pair.clinic.sql)).toEqual(await checksums(pair.cloud.sql));
  });

  it("encodes each page as soon as it is pulled, while the page before it is applied", async () => {
    pair = await createSyncPair();
    const base = consultation();
    await insertConsultation(pair.cloud.sql, base);
    const cloud = pair.cloudPeer();
    expect(cloud.prepareApply).toBeTypeOf("function");
    const prepared = new Set<unknown>();
    /** Per apply: whether its request was encoded before, and how many were once it finished. */
    const applies: { prepared: boolean; preparedWhenDone: number }[] = [];
    let nextPrepared = () => {};
    const engine = createSyncEngine({
      local: { ...pair.clinicPeer(), changes$: undefined },
      remote: {
        ...cloud,
        changes$: undefined,
        prepareApply: (request) => {
          cloud.prepareApply?.(request);
          prepared.add(request);
          nextPrepared();
        },
        apply: async (request, options) => {
          const wasPrepared = prepared.has(request);
          const count = prepared.size;
          // Held until another page is encoded, or 1 s: the next page, pulled and encoded while
          // this one is applied, has the time to arrive before this apply ends.
          await new Promise<void>((resolve) => {
            nextPrepared = resolve;
            if (prepared.size > count) resolve();
            setTimeout(resolve, 1_000);
          });
          const result = await cloud.apply(request, options);
          applies.push({ prepared: wasPrepared, preparedWhenDone: prepared.size });
          return result;
        },
      },
      intervalMs: 60_000,
      pageSize: 25,
    });
    engines.push(engine);
    expect((await engine.syncNow()).lastError).toBeNull();
    const [preparedBefore, appliedBefore] = [prepared.size, applies.length];
    await pushBytes(pair, engine, base.branches.id, 100);
    const pushed = applies.slice(appliedBefore);
    expect(pushed.length).toBeGreaterThanOrEqual(4);
    expect(pushed.every((apply) => apply.prepared)).toBe(true);
    // Every page but the last: the next one was encoded before this one's apply ended.
    for (const [i, apply] of pushed.slice(0, -1).entries())
      expect(apply.preparedWhenDone - preparedBefore, `page ${i + 1}`).toBeGreaterThanOrEqual(i + 2);
    expect(await checksums(pair.clinic.sql)).toEqual(await checksums(pair.cloud.sql));
  });
});

describe("the push falls back to JSON", () => {
  it("for a batch that does not fit a deflated one (256 KiB): it arrives uncompressed", async () => {
    pair = await createSyncPair();
    const base = consultation();
    await insertConsultation(pair.cloud.sql, base);
    const engine = engineTo(pair, pair.cloudPeer());
    expect((await engine.syncNow()).lastError).toBeNull();
    // 100 patients with 4,000 random base64 characters of notes each: 400 KB that deflate leaves
    // at about 300 KB, over the limit.
    const notes = () => randomBytes(3_000).toString("base64");
    const bytes = await pushBytes(pair, engine, base.branches.id, 100, notes);
    expect(bytes).toBeGreaterThan(400_000);
    expect(await checksums(pair.clinic.sql)).toEqual(await checksums(pair.cloud.sql));
  });

  it("from a client that cannot send bytes (no rpcBytes): the positional batch, as JSON", async () => {
    pair = await createSyncPair();
    const base = consultation();
    await insertConsultation(pair.cloud.sql, base);
    const bytes: Record<string, number> = {};
    const { supabase, link } = pair.cloud;
    const client = createClient(link.url(supabase.url), supabase.serviceRoleKey, {
      auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
      realtime: { transport: WebSocket as never },
    });
    const jsonOnly = createSupabasePeer({
      url: link.url(supabase.url),
      client: { rpc: (fn, args) => client.rpc(fn, args) },
      label: "cloud",
    });
    try {
      for (const [form, cloud] of [
        ["deflated", pair.cloudPeer()],
        ["json", jsonOnly],
      ] as const) {
        const engine = engineTo(pair, cloud);
        expect((await engine.syncNow()).lastError).toBeNull();
        bytes[form] = await pushBytes(pair, engine, base.branches.id, 100);
        await engine.stop();
      }
    } finally {
      await jsonOnly.close();
    }
    expect(bytes.json).toBeGreaterThan((bytes.deflated ?? 0) * 2);
    expect(await checksums(pair.clinic.sql)).toEqual(await checksums(pair.cloud.sql));
  });
});

describe("the pull into the clinic server over a direct connection", () => {
  it("applies the array of changes, which the clinic server reads fastest, though it takes the positional batch", async () => {
    pair = await createSyncPair();
    const base = consultation();
    await insertConsultation(pair.cloud.sql, base);
    const sql = postgres(pair.clinic.url, { max: 1, onnotice: () => {} });
    const sent: unknown[] = [];
    // The real client, its statements' cv_sync_apply batches noted on the way.
    const recording = new Proxy(sql, {
      get(target, key, receiver) {
        if (key !== "unsafe") return Reflect.get(target, key, receiver);
        return (text: string, values: unknown[], options: unknown) => {
          if (text.includes("public.cv_sync_apply(")) sent.push(JSON.parse(values[3] as string));
          return target.unsafe(text, values as never[], options as never);
        };
      },
    });
    const local = createPostgresPeer({ sql: recording as never, label: "clinic server" });
    try {
      expect((await local.node()).applyFormats).toContain("positional");
      const engine = createSyncEngine({
        local,
        remote: { ...pair.cloudPeer(), changes$: undefined },
        intervalMs: 60_000,
      });
      engines.push(engine);
      // The initial sync copies what is there; the patients written after it come as changes.
      expect((await engine.syncNow()).lastError).toBeNull();
      for (let i = 0; i < 20; i++)
        await insert(pair.cloud.sql, "patients", patient(base.branches.id, `Paciente ${i}`));
      sent.length = 0;
      expect((await engine.syncNow()).lastError).toBeNull();
      expect(await checksums(pair.clinic.sql)).toEqual(await checksums(pair.cloud.sql));
      const batches = sent.filter((batch) => !Array.isArray(batch) || batch.length > 0);
      expect(batches.length).toBeGreaterThan(0);
      for (const batch of batches)
        expect(batch).toEqual(expect.arrayContaining([expect.objectContaining({ table: "patients" })]));
    } finally {
      await sql.end();
    }
  });
});

describe("a page the cloud's API cuts short (its Max rows lowered below what a page needs)", () => {
  it("is refused whole with what to change, its cursor kept; smaller pages then bring every change", async () => {
    // 10 rows: a page of up to 2,000 changes (1,000 and the rest of its transaction) is 15 chunks
    // of 100, its header and its end marker; 600 changes (pageSize 300) are 8.
    const cutPair = await createSyncPair({ maxRows: 10 });
    pair = cutPair;
    const cut = cutPair.engine({ pageSize: 1_000 });
    expect((await cut.syncNow()).lastError).toBeNull();
    await cutPair.cloud.sql`insert into branches (id, code, name, address)
      select gen_random_uuid(), 'CUT-' || g, 'Sucursal ' || g, 'Av. Reforma ' || g from generate_series(1, 1500) g`;
    const cursor = async () => {
      const [row] = await cutPair.clinic.sql<{ c: unknown }[]>`
        select cv_sync_cursor(${cutPair.cloud.nodeId}) -> 'cursor' as c`;
      return row?.c;
    };
    const before = await cursor();
    const { lastError } = await cut.syncNow();
    expect(lastError).toMatchObject({ code: "invalid_config" });
    expect(lastError?.message).toMatch(
      /cv_sync_pull answered 10 items without the page's end marker.*Max rows/,
    );
    expect(await cursor()).toEqual(before);
    await cut.stop();
    expect((await cutPair.engine({ pageSize: 300 }).syncNow()).lastError).toBeNull();
    expect(await checksums(cutPair.clinic.sql)).toEqual(await checksums(cutPair.cloud.sql));
  });
});
