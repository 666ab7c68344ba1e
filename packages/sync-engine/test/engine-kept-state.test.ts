import { consultation, insert, insertConsultation, patient, rowOf } from "@centrovision/testkit/nodes";
import { afterEach, describe, expect, it } from "vitest";
import { checksums, createSyncPair, type SyncPair } from "./support/sync-pair.js";

let pair: SyncPair | undefined;

afterEach(async () => {
  await pair?.close();
  pair = undefined;
});

/** What the cloud holds as acknowledged by the clinic server, as a comparable position. */
async function ackedByClinic(node: SyncPair): Promise<bigint> {
  const [row] = await node.cloud.sql<{ txid: string | null; seq: string | null }[]>`
    select acked_txid::text as txid, acked_seq::text as seq from cv_sync.peers where peer_id = ${node.clinic.nodeId}`;
  return BigInt(row?.txid ?? 0) * 1_000_000_000n + BigInt(row?.seq ?? 0);
}

describe("what the cloud holds about the clinic server, kept between cycles", () => {
  it("a reset of the cloud's record between cycles costs no failed cycle: the push reads it anew and replays", async () => {
    pair = await createSyncPair();
    const engine = pair.engine();
    const base = consultation();
    await insertConsultation(pair.cloud.sql, base);
    expect((await engine.syncNow()).lastError).toBeNull();
    // The second cycle reads the record the first one made steady, and keeps it.
    expect((await engine.syncNow()).lastError).toBeNull();
    await pair.cloud.sql`select cv_sync_reset_peer(${pair.clinic.nodeId})`;
    const row = patient(base.branches.id, "Tras el reinicio");
    await insert(pair.clinic.sql, "patients", row);
    const status = await engine.syncNow();
    expect(status).toMatchObject({ lastError: null, consecutiveFailures: 0, pendingUp: 0 });
    expect(await rowOf(pair.cloud.sql, "patients", row.id)).toBeDefined();
    expect(await checksums(pair.clinic.sql)).toEqual(await checksums(pair.cloud.sql));
  });

  it("acknowledges to the cloud once a minute while replays are short, page by page when long; the clinic server's at once", async () => {
    pair = await createSyncPair();
    const engine = pair.engine({ pageSize: 2 });
    const base = consultation();
    await insertConsultation(pair.cloud.sql, base);
    expect((await engine.syncNow()).lastError).toBeNull();
    const first = await ackedByClinic(pair);
    expect(first).toBeGreaterThan(0n);

    const short = patient(base.branches.id, "Una sola página");
    await insert(pair.cloud.sql, "patients", short);
    expect((await engine.syncNow()).lastError).toBeNull();
    expect(await rowOf(pair.clinic.sql, "patients", short.id)).toBeDefined();
    expect(await ackedByClinic(pair)).toBe(first);

    // The clinic server's PCs wait for this count to reach 0 before they return to the cloud.
    const fromClinic = patient(base.branches.id, "Escrito en la clínica");
    await insert(pair.clinic.sql, "patients", fromClinic);
    expect((await engine.syncNow()).lastError).toBeNull();
    const [pending] = await pair.clinic.sql<{ n: string }[]>`select public.cv_client_pending()::text as n`;
    expect(pending?.n).toBe("0");

    const many = Array.from({ length: 5 }, (_, i) => patient(base.branches.id, `Página ${i}`));
    for (const row of many) await insert(pair.cloud.sql, "patients", row);
    const status = await engine.syncNow();
    expect(status).toMatchObject({ lastError: null, pendingDown: 0 });
    expect(await ackedByClinic(pair)).toBeGreaterThan(first);
    const [left] = await pair.cloud.sql<{ n: string }[]>`
      select public.cv_sync_pending(${pair.clinic.nodeId})::text as n`;
    expect(left?.n).toBe("0");
  });
});
