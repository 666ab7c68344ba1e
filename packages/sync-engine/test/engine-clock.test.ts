import { insert, patient, rowOf } from "@centrovision/testkit/nodes";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { SyncEngine, SyncStatus } from "../src/index.js";
import { checksums, type SyncPair, syncedPair } from "./support/sync-pair.js";

/*
 * A node whose clock runs ahead (sql/0005 cv_sync.check_clock, CV009): the direction that would
 * take its future stamps is reported as blocked with what to check, nothing of the batch is
 * applied, and it resumes by itself once the stamps are no longer ahead.
 */

let pair: SyncPair;
let engine: SyncEngine;
let branchId: string;

beforeEach(async () => {
  ({ pair, engine, branchId } = await syncedPair());
});

afterEach(() => pair.close());

/** Makes the cloud's next stamps `aheadMs` ahead of real time, as a cloud whose clock runs fast would. */
async function cloudRunsAhead(aheadMs: number): Promise<void> {
  await pair.cloud.sql`update cv_sync.node set hlc_floor = ${Date.now() + aheadMs} where singleton`;
}

async function clinicCursorForCloud(): Promise<unknown> {
  const [found] = await pair.clinic.sql<
    { c: unknown }[]
  >`select cv_sync_cursor(${pair.cloud.nodeId}) -> 'cursor' as c`;
  return found?.c;
}

async function clinicFloor(): Promise<string | undefined> {
  const [found] = await pair.clinic.sql<
    { floor: string }[]
  >`select hlc_floor::text as floor from cv_sync.node`;
  return found?.floor;
}

describe("a peer whose clock runs ahead", () => {
  it("blocks the direction with the reason, applies nothing and leaves the cursor, the floor and the other direction alone", async () => {
    const onTime = patient(branchId, "A tiempo");
    await insert(pair.cloud.sql, "patients", onTime);
    await cloudRunsAhead(3_600_000);
    const ahead = patient(branchId, "Del futuro");
    await insert(pair.cloud.sql, "patients", ahead);
    const [cursor, floor] = [await clinicCursorForCloud(), await clinicFloor()];
    const fromClinic = patient(branchId, "Sube igual");
    await insert(pair.clinic.sql, "patients", fromClinic);

    const status = await engine.syncNow();
    expect(status.phase).toBe("blocked");
    expect(status.blocked).toEqual([
      expect.objectContaining({ direction: "pull", reason: "clock_ahead", tables: ["patients"] }),
    ]);
    expect(status.blocked[0]?.message).toMatch(
      /the HLC of a change of patients from the other node is 3[56]\d\d s ahead of this server's clock \(at most 300 s allowed\); nothing was applied\. Check the clocks \(NTP\) of both nodes; this direction resumes by itself/,
    );
    expect(await rowOf(pair.clinic.sql, "patients", onTime.id)).toBeUndefined();
    expect(await rowOf(pair.clinic.sql, "patients", ahead.id)).toBeUndefined();
    expect([await clinicCursorForCloud(), await clinicFloor()]).toEqual([cursor, floor]);
    expect(await rowOf(pair.cloud.sql, "patients", fromClinic.id)).toBeDefined();

    // Every cycle tries again and says the same.
    const again = await engine.syncNow();
    expect(again.blocked).toEqual([
      expect.objectContaining({ reason: "clock_ahead", since: status.blocked[0]?.since }),
    ]);
  });

  it("resumes by itself once the change is no longer ahead", async () => {
    // A clinic that allows no skew meets a cloud 1.5 s ahead: blocked until real time catches up.
    await pair.clinic.sql`update cv_sync.node set max_clock_skew = '0' where singleton`;
    await cloudRunsAhead(1_500);
    const row = patient(branchId, "Casi a tiempo");
    await insert(pair.cloud.sql, "patients", row);
    expect((await engine.syncNow()).blocked).toEqual([
      expect.objectContaining({ direction: "pull", reason: "clock_ahead" }),
    ]);

    const deadline = Date.now() + 15_000;
    let status: SyncStatus = engine.getStatus();
    while (status.blocked.length > 0 && Date.now() < deadline) status = await engine.syncNow();
    expect(status).toMatchObject({ phase: "idle", blocked: [], lastError: null });
    expect(await rowOf(pair.clinic.sql, "patients", row.id)).toBeDefined();
    expect(await checksums(pair.clinic.sql)).toEqual(await checksums(pair.cloud.sql));
  });
});

describe("a clinic server whose clock ran far ahead for a while", () => {
  it("has its changes of that while re-stamped once its clock is right, and its push resumes by itself", async () => {
    // Its clock read 9999: an apply raised its HLC floor there, and a patient registered then is
    // stamped there. The cloud refuses that (no wait would let it through), and everything after it.
    await pair.clinic.sql`update cv_sync.node set hlc_floor = ${Date.UTC(9999, 11, 31)} where singleton`;
    const registered = patient(branchId, "Del año 9999");
    await insert(pair.clinic.sql, "patients", registered);
    // While its clock still looks right to itself (here: it allows a skew of 9,000 years), nothing
    // is re-stamped and the push stays blocked.
    await pair.clinic.sql`update cv_sync.node set max_clock_skew = '9000 years' where singleton`;
    const blocked = await engine.syncNow();
    expect(blocked.blocked).toEqual([expect.objectContaining({ direction: "push", reason: "clock_ahead" })]);
    expect(await rowOf(pair.cloud.sql, "patients", registered.id)).toBeUndefined();

    await pair.clinic.sql`update cv_sync.node set max_clock_skew = default where singleton`;
    const status = await engine.syncNow();
    expect(status).toMatchObject({ phase: "idle", blocked: [], lastError: null });
    expect(await rowOf(pair.cloud.sql, "patients", registered.id)).toBeDefined();
    expect(Number(await clinicFloor())).toBeLessThanOrEqual(Date.now());
    const later = patient(branchId, "De hoy");
    await insert(pair.clinic.sql, "patients", later);
    expect(await engine.syncNow()).toMatchObject({ blocked: [], lastError: null });
    expect(await checksums(pair.clinic.sql)).toEqual(await checksums(pair.cloud.sql));
  });
});
