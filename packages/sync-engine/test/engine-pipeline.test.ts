import { CvError } from "@centrovision/core";
import { consultation, insert, insertConsultation, patient } from "@centrovision/testkit/nodes";
import { afterEach, describe, expect, it } from "vitest";
import { createSyncEngine, type SyncEngine, type SyncPeer } from "../src/index.js";
import { fromSqlState } from "../src/sync-errors.js";
import { checksums, createSyncPair, duplicateLogEntries, type SyncPair } from "./support/sync-pair.js";

/*
 * The replay sends each page's apply without waiting for the one before it (log-sync.ts): the
 * target reads the later batch while it writes the earlier one, and takes the source's cursor in
 * turn. What a test must see: the pages overlap, they land in order, and a page that fails,
 * before or after it committed, or that overtakes the one in front of it, loses nothing and
 * applies nothing twice.
 */

let pair: SyncPair | undefined;
const engines: SyncEngine[] = [];

afterEach(async () => {
  await Promise.all(engines.splice(0).map((engine) => engine.stop()));
  await pair?.close();
  pair = undefined;
});

type Apply = () => ReturnType<SyncPeer["apply"]>;

interface Trace {
  /** Per apply, in the order sent: when it was sent, its changes, and when its reply came back (or failed). */
  readonly applies: { sent: number; rows: number; settled?: number }[];
}

type Around = (n: number, apply: Apply) => ReturnType<SyncPeer["apply"]>;

/**
 * An engine pushing from the pair's clinic server to the cloud in pages of 25, its cloud peer
 * traced; `around` wraps each apply (the `n`th sent, from 1).
 */
function tracedEngine(
  node: SyncPair,
  around: Around,
  options: { pageBudgetMs?: number },
): { engine: SyncEngine; trace: Trace } {
  const cloud = node.cloudPeer();
  const trace: Trace = { applies: [] };
  const engine = createSyncEngine({
    local: { ...node.clinicPeer(), changes$: undefined },
    remote: {
      ...cloud,
      changes$: undefined,
      apply: async (request, options) => {
        const entry: Trace["applies"][number] = { sent: performance.now(), rows: request.changes.length };
        trace.applies.push(entry);
        try {
          return await around(trace.applies.length, () => cloud.apply(request, options));
        } finally {
          entry.settled = performance.now();
        }
      },
    },
    intervalMs: 60_000,
    pageSize: 25,
    ...options,
  });
  engines.push(engine);
  return { engine, trace };
}

/** A cloud with a branch, and an engine to it whose first cycle is over. */
async function startPushing(around: Around, options: { pageBudgetMs?: number } = {}) {
  pair = await createSyncPair();
  const base = consultation();
  await insertConsultation(pair.cloud.sql, base);
  const traced = tracedEngine(pair, around, options);
  expect((await traced.engine.syncNow()).lastError).toBeNull();
  return { ...traced, node: pair, branchId: base.branches.id };
}

/** Writes `rows` new patients on the clinic server; resolves with their ids. */
async function writePatients(node: SyncPair, branchId: string, rows: number): Promise<string[]> {
  const written = Array.from({ length: rows }, (_, i) => patient(branchId, `Paciente ${i}`));
  for (const row of written) await insert(node.clinic.sql, "patients", row);
  return written.map((row) => row.id);
}

async function arrived(node: SyncPair, ids: readonly string[]): Promise<number> {
  const [found] = await node.cloud.sql<{ n: number }[]>`
    select count(*)::int as n from patients where id = any(${ids as string[]}::uuid[])`;
  return found?.n ?? 0;
}

async function expectSame(node: SyncPair): Promise<void> {
  expect(await checksums(node.clinic.sql)).toEqual(await checksums(node.cloud.sql));
  expect(await duplicateLogEntries(node.cloud.sql)).toBe(0);
}

describe("the replay's pages", () => {
  it("are applied one behind the other: each sent while the one before it is written, landing in order", async () => {
    let sentSoFar = 0;
    let rowsToSend = 0;
    let rowsSent = 0;
    const { engine, trace, node, branchId } = await startPushing(
      async (n, apply) => {
        // The engine's first cycle, before the replay under test, goes through as it is.
        if (rowsToSend === 0) return apply();
        sentSoFar = n;
        rowsSent += trace.applies[n - 1]?.rows ?? 0;
        const result = await apply();
        // The reply is held until the next page's apply was sent, unless this was the replay's
        // last page: that one went out while this one was being written. The 5 s bound only
        // keeps a broken pipeline from hanging the test; on a loaded machine the next page's
        // pull can take more than a second.
        const deadline = performance.now() + 5_000;
        while (sentSoFar <= n && rowsSent < rowsToSend && performance.now() < deadline)
          await new Promise((r) => setTimeout(r, 5));
        return result;
      },
      // A held reply makes the apply look slow; an apply slower than half the budget goes alone.
      { pageBudgetMs: 600_000 },
    );
    rowsToSend = 100;
    const before = trace.applies.length;
    const ids = await writePatients(node, branchId, 100);
    expect(await engine.syncNow()).toMatchObject({ lastError: null, pendingUp: 0 });
    expect(await arrived(node, ids)).toBe(100);
    const pushed = trace.applies.slice(before);
    expect(pushed.length).toBeGreaterThanOrEqual(4);
    for (const [i, apply] of pushed.slice(0, -1).entries()) {
      expect(pushed[i + 1]?.sent, `page ${i + 2} sent before page ${i + 1} settled`).toBeLessThan(
        apply.settled ?? 0,
      );
    }
    await expectSame(node);
  });

  it("go again, alone, when one reaches the target before the page in front of it (CV003): no error, nothing twice", async () => {
    let holdAt = Number.POSITIVE_INFINITY;
    let release = () => {};
    const overtaken = new Promise<void>((resolve) => {
      release = resolve;
    });
    const outcomes: string[] = [];
    const { engine, trace, node, branchId } = await startPushing(async (n, apply) => {
      // Page holdAt reaches the target only once the page behind it has been answered.
      if (n === holdAt) await Promise.race([overtaken, new Promise((r) => setTimeout(r, 5_000))]);
      try {
        const result = await apply();
        if (n >= holdAt) outcomes.push(`${n - holdAt} ${result.status}`);
        return result;
      } catch (error) {
        if (n >= holdAt) outcomes.push(`${n - holdAt} ${(error as { reason?: string }).reason}`);
        throw error;
      } finally {
        if (n === holdAt + 1) release();
      }
    });
    const ids = await writePatients(node, branchId, 100);
    holdAt = trace.applies.length + 2;
    expect(await engine.syncNow()).toMatchObject({ lastError: null, pendingUp: 0 });
    // The overtaking page is refused, the held one applied, the refused one sent again before the
    // page after it (which would otherwise be refused too), then the rest in turn.
    expect(outcomes).toEqual(["1 cursor_mismatch", "0 applied", "2 applied", "3 applied"]);
    expect(await arrived(node, ids)).toBe(100);
    await expectSame(node);
  });

  it("go again at once, alone, when the target refused one having written nothing (40P01): no error, nothing twice", async () => {
    let failAt = Number.POSITIVE_INFINITY;
    const outcomes: string[] = [];
    const { engine, trace, node, branchId } = await startPushing(async (n, apply) => {
      if (n === failAt) {
        outcomes.push("refused");
        throw fromSqlState("40P01", "cloud", "deadlock detected", "cv_sync_apply");
      }
      const result = await apply();
      if (n > failAt) outcomes.push(result.status);
      return result;
    });
    const ids = await writePatients(node, branchId, 100);
    failAt = trace.applies.length + 2;
    expect(await engine.syncNow()).toMatchObject({ lastError: null, pendingUp: 0 });
    expect(outcomes[0]).toBe("refused");
    expect(outcomes.slice(1).every((status) => status === "applied")).toBe(true);
    expect(await arrived(node, ids)).toBe(100);
    await expectSame(node);
  });

  for (const [when, failing] of [
    [
      "its reply is lost after it committed",
      async (apply: Apply) => {
        await apply();
        throw new CvError("unavailable", "[test] the link dropped the reply");
      },
    ],
    [
      "it never reached the target",
      async () => {
        // Dropped after a while, as a request is: the page behind it has been sent by then.
        await new Promise((resolve) => setTimeout(resolve, 300));
        throw new CvError("unavailable", "[test] the link dropped the request");
      },
    ],
  ] as const) {
    it(`lose nothing and apply nothing twice when one fails while the next is on its way: ${when}`, async () => {
      let failAt = Number.POSITIVE_INFINITY;
      const { engine, trace, node, branchId } = await startPushing((n, apply) =>
        n === failAt ? failing(apply) : apply(),
      );
      const ids = await writePatients(node, branchId, 100);
      failAt = trace.applies.length + 2;
      const failed = await engine.syncNow();
      expect(failed.lastError?.message).toMatch(/the link dropped/);
      // The page behind the failed one was sent before the failure was known.
      expect(trace.applies.length).toBeGreaterThan(failAt);
      expect(await arrived(node, ids)).toBeLessThan(100);
      expect(await engine.syncNow()).toMatchObject({ lastError: null, pendingUp: 0 });
      expect(await arrived(node, ids)).toBe(100);
      await expectSame(node);
    });
  }
});
