import type { JournalEntry } from "@centrovision/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SyncEngine } from "../src/index.js";
import { consultation, insert, insertConsultation, patient, rowOf, update } from "./support/fixtures.js";
import { checksums, createSyncPair, duplicateLogEntries, type SyncPair } from "./support/sync-pair.js";

let pair: SyncPair;
let engine: SyncEngine;
let branchId: string;

beforeAll(async () => {
  pair = await createSyncPair();
  engine = pair.engine();
  const base = consultation();
  branchId = base.branches.id;
  await insertConsultation(pair.cloud.sql, base);
  await engine.syncNow();
});

afterAll(() => pair.close());

/** What the failover router journals for a cloud write: the stored row as the cloud returned it. */
async function journalled(id: string): Promise<JournalEntry> {
  const row = await rowOf(pair.cloud.sql, "patients", id);
  if (!row) throw new Error("row not in the cloud");
  return {
    tier: "cloud",
    table: "patients",
    op: "upsert",
    id,
    row: { ...row, created_at: String(row.created_at), updated_at: String(row.updated_at) },
    at: Date.now(),
  };
}

describe("carrying a PC's recent cloud writes to the clinic server (read-your-writes)", () => {
  it("makes a new cloud row present on the clinic before any pull, and the pull then adds nothing", async () => {
    const row = patient(branchId, "Recién creada");
    await insert(pair.cloud.sql, "patients", row);
    const result = await engine.carryWrites([await journalled(row.id)]);
    expect(result).toMatchObject({ applied: 1, conflicts: 0, ignored: 0 });
    expect((await rowOf(pair.clinic.sql, "patients", row.id))?.version).toBe(
      (await rowOf(pair.cloud.sql, "patients", row.id))?.version,
    );
    await engine.syncNow();
    expect(await checksums(pair.clinic.sql)).toEqual(await checksums(pair.cloud.sql));
    expect(await duplicateLogEntries(pair.clinic.sql)).toBe(0);
    const [conflicts] = await pair.clinic.sql<
      { n: number }[]
    >`select count(*)::int as n from cv_sync.conflicts where row_id = ${row.id}`;
    expect(conflicts?.n).toBe(0);
    // The carry channel is forgotten: the clinic knows only the cloud as a peer.
    const peers = await pair.clinic.sql<{ peer_id: string }[]>`select peer_id from cv_sync.peers`;
    expect(peers.map((p) => p.peer_id)).toEqual([pair.cloud.nodeId]);
  });

  it("fast-forwards an edit whose base the clinic holds", async () => {
    const row = patient(branchId, "Editada");
    await insert(pair.cloud.sql, "patients", row);
    await engine.syncNow();
    await update(pair.cloud.sql, "patients", row.id, { notes: "Cita movida a las 12:00" });
    await engine.carryWrites([await journalled(row.id)]);
    expect((await rowOf(pair.clinic.sql, "patients", row.id))?.notes).toBe("Cita movida a las 12:00");
  });

  it("never overwrites a newer edit made on the clinic; the regular sync settles the pair", async () => {
    const row = patient(branchId, "Concurrente");
    await insert(pair.cloud.sql, "patients", row);
    await engine.syncNow();
    await update(pair.cloud.sql, "patients", row.id, { notes: "nube" });
    await update(pair.clinic.sql, "patients", row.id, { notes: "clínica" });
    await engine.carryWrites([await journalled(row.id)]);
    expect((await rowOf(pair.clinic.sql, "patients", row.id))?.notes).toBe("clínica");
    await engine.syncNow();
    await engine.syncNow();
    expect(await checksums(pair.clinic.sql)).toEqual(await checksums(pair.cloud.sql));
  });

  it("does not carry deletes, whose deleted version the journal does not hold", async () => {
    const result = await engine.carryWrites([
      { tier: "cloud", table: "patients", op: "delete", id: crypto.randomUUID(), row: null, at: 0 },
    ]);
    expect(result).toMatchObject({ applied: 0, ignored: 1 });
  });

  it("gives the failover router its hooks", async () => {
    const hooks = engine.routerHooks();
    await insert(pair.clinic.sql, "patients", patient(branchId, "Pendiente"));
    expect(await hooks.pendingChanges("clinic")).toBe(1);
    expect(await hooks.pendingChanges("cloud")).toBe(0);
    await engine.syncNow();
    expect(await hooks.pendingChanges("clinic")).toBe(0);
    expect(hooks.lastSyncAt()).toBe(engine.getStatus().lastSuccessAt);
    expect(hooks.isSyncing()).toBe(false);
  });
});
