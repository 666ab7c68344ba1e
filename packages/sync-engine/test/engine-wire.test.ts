import { consultation, insert, insertConsultation, patient } from "@centrovision/testkit/nodes";
import { afterEach, describe, expect, it } from "vitest";
import { createSyncEngine, type SyncEngine, type SyncPeer } from "../src/index.js";
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

/** Bytes the engine sent the cloud over the link while it pushed `rows` new patients of `branchId`, all in one cycle. */
async function pushBytes(
  node: SyncPair,
  engine: SyncEngine,
  branchId: string,
  rows: number,
): Promise<number> {
  const written = Array.from({ length: rows }, (_, i) => patient(branchId, `Paciente ${i}`));
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
});
