import { insert, patient, rowOf } from "@centrovision/testkit/nodes";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { SyncEngine } from "../src/index.js";
import { checksums, type SyncPair, syncedPair } from "./support/sync-pair.js";

let pair: SyncPair;
let engine: SyncEngine;
let branchId: string;

beforeEach(async () => {
  ({ pair, engine, branchId } = await syncedPair());
});

afterEach(() => pair.close());

async function expectConverged(): Promise<void> {
  expect(await checksums(pair.clinic.sql)).toEqual(await checksums(pair.cloud.sql));
}

describe("a direction that cannot resume safely stops and says why", () => {
  it("blocks the pull when the cloud was re-initialised (epoch changed), and resumes after a re-sync", async () => {
    await pair.cloud.sql`select cv_sync_init('cloud', true)`;
    const row = patient(branchId, "Después del respaldo");
    await insert(pair.cloud.sql, "patients", row);
    const status = await engine.syncNow();
    expect(status.phase).toBe("blocked");
    expect(status.blocked).toEqual([
      expect.objectContaining({
        direction: "pull",
        reason: "epoch_changed",
        message: expect.stringContaining("re-sync"),
      }),
    ]);
    expect(status.blocked[0]?.message).toContain("re-initialised or restored");
    expect(await rowOf(pair.clinic.sql, "patients", row.id)).toBeUndefined();
    // The push direction is not affected: the clinic did not change.
    const fromClinic = patient(branchId, "Sigue subiendo");
    await insert(pair.clinic.sql, "patients", fromClinic);
    await engine.syncNow();
    expect(await rowOf(pair.cloud.sql, "patients", fromClinic.id)).toBeDefined();

    await engine.resync("pull");
    const resumed = await engine.syncNow();
    expect(resumed).toMatchObject({ phase: "idle", blocked: [], lastError: null });
    expect(await rowOf(pair.clinic.sql, "patients", row.id)).toBeDefined();
    await expectConverged();
  });

  it("blocks on schema drift naming the table, and resumes once both sides have the same schema", async () => {
    await pair.clinic.sql`alter table patients add column referred_by text`;
    const row = patient(branchId, "Deriva");
    await insert(pair.cloud.sql, "patients", row);
    const status = await engine.syncNow();
    expect(status.schemaDrift).toEqual(["patients"]);
    expect(status.phase).toBe("blocked");
    expect(status.blocked).toEqual([
      expect.objectContaining({ direction: "pull", reason: "schema_drift", tables: ["patients"] }),
    ]);
    expect(status.blocked[0]?.message).toMatch(/schema drift: table\(s\) patients differ .*migrations/);
    expect(await rowOf(pair.clinic.sql, "patients", row.id)).toBeUndefined();

    await pair.cloud.sql`alter table patients add column referred_by text`;
    const healed = await engine.syncNow();
    expect(healed).toMatchObject({ phase: "idle", blocked: [], schemaDrift: [], lastError: null });
    expect(await rowOf(pair.clinic.sql, "patients", row.id)).toBeDefined();
    await expectConverged();
  });

  it("blocks when the clinic server went back in time (restored from a backup without re-initialising)", async () => {
    await insert(pair.cloud.sql, "patients", patient(branchId, "Antes del respaldo"));
    await engine.syncNow();
    // What a file-level restore leaves: the cursor the clinic held yesterday, the same epoch.
    await pair.clinic
      .sql`update cv_sync.peers set cursor_txid = 1, cursor_seq = 0 where peer_id = ${pair.cloud.nodeId}`;
    const status = await engine.syncNow();
    expect(status.blocked).toEqual([
      expect.objectContaining({
        direction: "pull",
        reason: "peer_restored",
        message: expect.stringContaining(
          "clinic server holds an older cursor for cloud than it had acknowledged",
        ),
      }),
    ]);
  });

  it("blocks when the cloud's log is behind the cursor the clinic holds for it", async () => {
    const [node] = await pair.cloud.sql<{ max: string }[]>`select (cv_sync_node() ->> 'max_txid') as max`;
    await pair.clinic.sql`
      update cv_sync.peers set cursor_txid = ${Number(node?.max) + 1_000_000} where peer_id = ${pair.cloud.nodeId}`;
    const status = await engine.syncNow();
    expect(status.blocked).toEqual([
      expect.objectContaining({
        direction: "pull",
        reason: "peer_restored",
        message: expect.stringContaining("cloud's log is behind the cursor clinic server holds for it"),
      }),
    ]);
    await engine.resync("pull");
    expect(await engine.syncNow()).toMatchObject({ blocked: [], lastError: null });
    await expectConverged();
  });
});
