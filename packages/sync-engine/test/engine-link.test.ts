import { SYNCED_TABLES } from "@centrovision/core";
import { consultation, insertConsultation, patient } from "@centrovision/testkit/nodes";
import { filter, firstValueFrom } from "rxjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SyncDirection, SyncEngine, SyncProgress, SyncStatus } from "../src/index.js";
import { checksums, createSyncPair, duplicateLogEntries, type SyncPair } from "./support/sync-pair.js";

let pair: SyncPair;
let branchId: string;

beforeAll(async () => {
  pair = await createSyncPair();
  const base = consultation();
  branchId = base.branches.id;
  await insertConsultation(pair.cloud.sql, base);
});

afterAll(() => pair.close());

/** `count` patients in transactions of 25, so the log has many transaction boundaries to page at. */
async function writePatients(sql: SyncPair["cloud"]["sql"], count: number, label: string): Promise<void> {
  for (let done = 0; done < count; done += 25) {
    await sql.begin(async (tx) => {
      for (let i = done; i < Math.min(count, done + 25); i++) {
        await tx`insert into patients ${tx(patient(branchId, `${label} ${i}`))}`;
      }
    });
  }
}

/** Cycles until one succeeds: the first after a cut may still meet a connection the link reset. */
async function syncUntilClean(engine: SyncEngine): Promise<SyncStatus> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const status = await engine.syncNow();
    if (status.lastError === null) return status;
  }
  throw new Error("no clean cycle after 5 attempts");
}

async function cutMidBatch(direction: SyncDirection, write: () => Promise<void>) {
  const engine = pair.engine({ pageSize: 100, timeoutMs: 1_000 });
  await syncUntilClean(engine);
  await write();
  const events: SyncProgress[] = [];
  engine.progress$.subscribe((event) => events.push(event));
  const firstApplied = firstValueFrom(
    engine.progress$.pipe(filter((p) => p.direction === direction && p.event === "applied")),
  );
  const cycle = engine.syncNow();
  await firstApplied;
  await pair.cloud.link.blackhole();
  const cut = await cycle;
  expect(cut.lastError?.code).toMatch(/^(timeout|unavailable)$/);
  const beforeResume = events.filter((e) => e.direction === direction && e.event === "applied").length;
  await pair.cloud.link.pass();
  events.length = 0;
  await syncUntilClean(engine);
  const resumedChanges = events
    .filter((e) => e.direction === direction && e.event === "applied")
    .reduce((sum, e) => sum + e.pageRows, 0);
  expect(beforeResume).toBeGreaterThanOrEqual(1);
  // A replay of many pages reports how much it has to move.
  expect(
    events.some((e) => e.direction === direction && e.total !== undefined && e.total >= e.rowsDone),
  ).toBe(true);
  // Resumed from the saved cursor, not from the start of the backlog.
  expect(resumedChanges).toBeLessThan(1_500);
  expect(await checksums(pair.clinic.sql)).toEqual(await checksums(pair.cloud.sql));
  expect(await duplicateLogEntries(pair.clinic.sql)).toBe(0);
  expect(await duplicateLogEntries(pair.cloud.sql)).toBe(0);
  await engine.stop();
}

describe("a link cut in the middle of a batch", () => {
  it("pushing: the cloud stops answering after the first page; after it returns, the push resumes and converges", async () => {
    await cutMidBatch("push", () => writePatients(pair.clinic.sql, 1_500, "Push"));
  });

  it("pulling: the cloud stops answering after the first page; after it returns, the pull resumes and converges", async () => {
    await cutMidBatch("pull", () => writePatients(pair.cloud.sql, 1_500, "Pull"));
  });

  it("every synced table survived the cuts", async () => {
    const sums = await checksums(pair.cloud.sql);
    expect(Object.keys(sums)).toEqual([...SYNCED_TABLES]);
  });
});
