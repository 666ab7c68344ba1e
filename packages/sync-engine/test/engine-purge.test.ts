import {
  consultation,
  insert,
  insertConsultation,
  patient,
  remove,
  rowOf,
} from "@centrovision/testkit/nodes";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SyncEngine } from "../src/index.js";
import { checksums, type SyncPair, syncedPair } from "./support/sync-pair.js";

let pair: SyncPair;
let branchId: string;

beforeAll(async () => {
  ({ pair, branchId } = await syncedPair());
});

afterAll(() => pair.close());

const logSize = async (node: SyncPair["cloud"] | SyncPair["clinic"]) =>
  (await node.sql<{ n: number }[]>`select count(*)::int as n from cv_sync.change_log`)[0]?.n ?? 0;

const tombstones = async (node: SyncPair["cloud"] | SyncPair["clinic"]) =>
  (await node.sql<{ n: number }[]>`select count(*)::int as n from cv_sync.row_state where deleted`)[0]?.n ??
  0;

async function sync(engine: SyncEngine) {
  const status = await engine.syncNow();
  expect(status.lastError).toBeNull();
  return status;
}

describe("the engine keeps both change logs bounded", () => {
  it("keeps what is younger than the retention", async () => {
    const engine = pair.engine({ purgeIntervalMs: 1, purgeRetention: "1 day" });
    await insertConsultation(pair.clinic.sql, consultation());
    const before = { clinic: await logSize(pair.clinic), cloud: await logSize(pair.cloud) };
    const status = await sync(engine);
    expect(status.changeLog.clinic).toMatchObject({ purged: 0, error: null });
    expect(status.changeLog.cloud).toMatchObject({ purged: 0, error: null });
    // The cycle added the applied entries on each side; nothing left.
    expect(await logSize(pair.clinic)).toBeGreaterThanOrEqual(before.clinic);
    expect(status.changeLog.clinic?.entries).toBe(await logSize(pair.clinic));
    await engine.stop();
  });

  it("drops what every peer acknowledged past the retention, on both nodes, tombstones too, and still syncs", async () => {
    // Acknowledgements saved every cycle (a clinic saves an idle one once a minute).
    const options = { purgeRetention: "0 seconds", idleCursorSaveMs: 0 };
    const keeping = pair.engine({ ...options, purgeIntervalMs: 0 });
    const gone = patient(branchId, "Purga");
    await insert(pair.cloud.sql, "patients", gone);
    await insertConsultation(pair.clinic.sql, consultation());
    await sync(keeping);
    await remove(pair.cloud.sql, "patients", gone.id);
    await sync(keeping);
    await sync(keeping);
    await keeping.stop();
    expect(await tombstones(pair.clinic)).toBeGreaterThan(0);
    expect(await logSize(pair.clinic)).toBeGreaterThan(0);

    const engine = pair.engine({ ...options, purgeIntervalMs: 1 });
    // One more cycle: each side has acknowledged everything the other logged.
    const status = await sync(engine);
    expect(status.changeLog.clinic).toMatchObject({ entries: 0, error: null });
    expect(status.changeLog.cloud).toMatchObject({ entries: 0, error: null });
    expect(status.changeLog.clinic?.purgedAt).toEqual(expect.any(String));
    expect(await logSize(pair.clinic)).toBe(0);
    expect(await logSize(pair.cloud)).toBe(0);
    expect(await tombstones(pair.clinic)).toBe(0);
    expect(await tombstones(pair.cloud)).toBe(0);

    // Purged logs lose nothing: new changes on both sides still arrive.
    const fromCloud = patient(branchId, "Después de la purga");
    const fromClinic = consultation();
    await insert(pair.cloud.sql, "patients", fromCloud);
    await insertConsultation(pair.clinic.sql, fromClinic);
    await sync(engine);
    expect(await rowOf(pair.clinic.sql, "patients", fromCloud.id)).toBeDefined();
    expect(await rowOf(pair.cloud.sql, "diagnoses", fromClinic.diagnoses.id)).toBeDefined();
    expect(await checksums(pair.clinic.sql)).toEqual(await checksums(pair.cloud.sql));
    await engine.stop();
  });

  it("keeps everything a peer has not acknowledged", async () => {
    const engine = pair.engine({
      purgeIntervalMs: 1,
      purgeRetention: "0 seconds",
      idleCursorSaveMs: 0,
      timeoutMs: 1_000,
    });
    await sync(engine);
    // Written at the clinic while the cloud does not answer: the cycle fails, nothing is purged.
    await pair.cloud.link.blackhole();
    await insertConsultation(pair.clinic.sql, consultation());
    const waiting = await logSize(pair.clinic);
    expect(waiting).toBeGreaterThan(0);
    const cut = await engine.syncNow();
    expect(cut.lastError).not.toBeNull();
    expect(await logSize(pair.clinic)).toBe(waiting);
    await pair.cloud.link.pass();
    await sync(engine);
    await sync(engine);
    expect(await logSize(pair.clinic)).toBe(0);
    await engine.stop();
  });
});
