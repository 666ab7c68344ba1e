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

/** The cloud as a node whose sql/ functions predate the positional batch: it lists no apply formats. */
function olderNode(peer: SyncPeer): SyncPeer {
  return {
    ...peer,
    node: async (options) => {
      const { applyFormats: _, ...info } = await peer.node(options);
      return info;
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
  it("goes as positional batches to a cloud that lists them, in about half the bytes of the array form an older cloud gets", async () => {
    pair = await createSyncPair();
    const base = consultation();
    await insertConsultation(pair.cloud.sql, base);
    const current = engineTo(pair, pair.cloudPeer());
    expect((await current.syncNow()).lastError).toBeNull();
    const positional = await pushBytes(pair, current, base.branches.id, 100);
    await current.stop();
    const older = engineTo(pair, olderNode(pair.cloudPeer()));
    // Its first cycle starts at once: over before the rows are written, it pushes none of them.
    expect((await older.syncNow()).lastError).toBeNull();
    const array = await pushBytes(pair, older, base.branches.id, 100);
    expect(await checksums(pair.clinic.sql)).toEqual(await checksums(pair.cloud.sql));
    expect(positional).toBeLessThan(array * 0.7);
  });
});
