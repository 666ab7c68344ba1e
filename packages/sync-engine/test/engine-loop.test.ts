import { randomUUID } from "node:crypto";
import { CvError } from "@centrovision/core";
import { lastValueFrom, Subject, toArray } from "rxjs";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { type ChangeNotice, createSyncEngine, type NodeInfo, type SyncPeer } from "../src/index.js";
import { backoffDelay } from "../src/internal/backoff.js";

/**
 * A scripted peer for the loop's timing only (every data path is tested against real databases):
 * answers at once or after `delayMs`, or fails as unreachable while `down` is set. Like a node,
 * it keeps the cursor an apply saved and the acknowledgement it took, and reads them back.
 */
const EPOCH = randomUUID();

function scriptedPeer(name: string) {
  const info: NodeInfo = {
    nodeId: randomUUID(),
    nodeName: name,
    // Both peers share it, so each finds the epoch it "stored" for the other unchanged.
    epoch: EPOCH,
    fingerprint: { patients: "same" },
    now: new Date().toISOString(),
    maxTxid: 100,
    openConflicts: 0,
    quarantined: 0,
  };
  const state = {
    down: false,
    delayMs: 0,
    nodeCalls: 0,
    cursorCalls: 0,
    pendingCalls: 0,
    pullCalls: 0,
    pullRunning: 0,
    maxPullRunning: 0,
    running: 0,
    ackCalls: 0,
    cursor: { txid: 1, seq: 0 },
    acked: null as { txid: number; seq: number } | null,
  };
  const answer = async <T>(value: T): Promise<T> => {
    state.running++;
    try {
      if (state.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, state.delayMs));
      if (state.down) throw new CvError("unavailable", `[test] ${name} is down`);
      return value;
    } finally {
      state.running--;
    }
  };
  const unused = () => Promise.reject(new Error("not used by the loop"));
  const peer: SyncPeer = {
    label: name,
    init: unused,
    disabledUsers: unused,
    setDisabledUsers: unused,
    clinicKey: unused,
    registerClinicKey: unused,
    sealAudit: unused,
    auditEvents: unused,
    verifyAudit: unused,
    auditHead: unused,
    sealedAuditAfter: unused,
    receiveAudit: unused,
    node: () => {
      state.nodeCalls++;
      return answer({ ...info, now: new Date().toISOString() });
    },
    pull: async () => {
      state.pullCalls++;
      state.maxPullRunning = Math.max(state.maxPullRunning, ++state.pullRunning);
      try {
        return await answer({
          source: info,
          now: new Date().toISOString(),
          changes: [],
          cursor: { txid: 50, seq: 0 },
          hasMore: false,
        });
      } finally {
        state.pullRunning--;
      }
    },
    apply: async (batch) => {
      const result = await answer({ status: "applied" as const, applied: 0, skipped: 0, conflicts: 0 });
      state.cursor = batch.cursor;
      return result;
    },
    cursor: () => {
      state.cursorCalls++;
      return answer({
        cursor: state.cursor,
        epoch: EPOCH,
        catchupUntil: null,
        snapshotProgress: null,
        acked: state.acked,
      });
    },
    ack: async (_consumer, cursor) => {
      state.ackCalls++;
      await answer(undefined);
      state.acked = cursor;
    },
    pending: () => {
      state.pendingCalls++;
      return answer(0);
    },
    snapshot: unused,
    applySnapshot: unused,
    resetPeer: unused,
    restampAhead: unused,
    purge: unused,
    listConflicts: () => answer([]),
    resolveConflict: unused,
    close: () => Promise.resolve(),
  };
  return { peer, state, info };
}

beforeEach(() => {
  vi.useFakeTimers();
});

afterEach(() => {
  vi.useRealTimers();
});

describe("backoffDelay", () => {
  it("doubles from the minimum, caps at the maximum, and randomises the upper half", () => {
    const top = () => 0.999_999;
    const bottom = () => 0;
    expect([1, 2, 3, 4, 5, 6].map((n) => backoffDelay(n, 1_000, 10_000, top))).toEqual([
      1_000, 2_000, 4_000, 8_000, 10_000, 10_000,
    ]);
    expect(backoffDelay(3, 1_000, 10_000, bottom)).toBe(2_000);
    expect(backoffDelay(1_000, 1_000, 60_000, top)).toBe(60_000);
  });
});

describe("the sync loop", () => {
  it("backs off after failed cycles up to the cap, and a syncNow() skips the wait", async () => {
    const local = scriptedPeer("clinic");
    const remote = scriptedPeer("cloud");
    remote.state.down = true;
    const engine = createSyncEngine({
      local: local.peer,
      remote: remote.peer,
      intervalMs: 30_000,
      minBackoffMs: 1_000,
      maxBackoffMs: 4_000,
      random: () => 0.999_999,
    });
    const waits: number[] = [];
    engine.status$.subscribe((status) => {
      if (status.nextCycleAt !== null && status.consecutiveFailures > waits.length) {
        waits.push(Date.parse(status.nextCycleAt) - Date.now());
      }
    });
    while (waits.length < 4) await vi.advanceTimersByTimeAsync(250);
    expect(engine.getStatus().lastError).toMatchObject({ code: "unavailable" });
    expect(waits).toEqual([1_000, 2_000, 4_000, 4_000]);

    remote.state.down = false;
    let next = 0;
    engine.status$.subscribe((status) => {
      if (status.nextCycleAt !== null && status.consecutiveFailures === 0)
        next = Date.parse(status.nextCycleAt) - Date.now();
    });
    const recovered = engine.syncNow();
    await vi.advanceTimersByTimeAsync(0);
    expect(await recovered).toMatchObject({ consecutiveFailures: 0, lastError: null, phase: "idle" });
    expect(next).toBe(30_000);
    await engine.stop();
  });

  it("never overlaps cycles: calls during a cycle are served by one cycle right after it", async () => {
    const local = scriptedPeer("clinic");
    const remote = scriptedPeer("cloud");
    const engine = createSyncEngine({ local: local.peer, remote: remote.peer, intervalMs: 60_000 });
    await vi.advanceTimersByTimeAsync(0);
    remote.state.delayMs = 1_000;
    // Each cycle pulls from the cloud once.
    const before = remote.state.pullCalls;
    const first = engine.syncNow();
    await vi.advanceTimersByTimeAsync(10);
    const during = [engine.syncNow(), engine.syncNow(), engine.syncNow()];
    await vi.advanceTimersByTimeAsync(60_000);
    await Promise.all([first, ...during]);
    // Every cycle pulls from the cloud, each pull taking 1 s: overlapping cycles would overlap here.
    expect(remote.state.maxPullRunning).toBe(1);
    // The cycle started by the first call, then one more for the three made during it.
    expect(remote.state.pullCalls - before).toBe(2);
    await engine.stop();
  });

  it("a change the clinic server reports starts a cycle at once: one early cycle per wakeGapMs, none in a backoff", async () => {
    const local = scriptedPeer("clinic");
    const remote = scriptedPeer("cloud");
    const reported = new Subject<ChangeNotice>();
    const engine = createSyncEngine({
      local: { ...local.peer, changes$: reported },
      remote: remote.peer,
      intervalMs: 20_000,
      wakeGapMs: 10_000,
      minBackoffMs: 5_000,
      maxBackoffMs: 5_000,
      random: () => 0.999_999,
    });
    // Each cycle starts in the phase "pulling".
    let started = 0;
    let phase = "";
    engine.status$.subscribe((status) => {
      if (status.phase === "pulling" && phase !== "pulling") started += 1;
      phase = status.phase;
    });
    const cycles = () => started;
    await vi.advanceTimersByTimeAsync(100);
    expect(cycles()).toBe(1);
    // The echo of the clinic server's own push is no reason to sync.
    reported.next({ origins: [local.info.nodeId] });
    await vi.advanceTimersByTimeAsync(10);
    expect(cycles()).toBe(1);
    reported.next({ origins: [local.info.nodeId, remote.info.nodeId] });
    await vi.advanceTimersByTimeAsync(10);
    expect(cycles()).toBe(2);
    // More changes within wakeGapMs wait for it, and are served by one cycle.
    reported.next({ origins: null });
    reported.next({ origins: null });
    await vi.advanceTimersByTimeAsync(9_000);
    expect(cycles()).toBe(2);
    await vi.advanceTimersByTimeAsync(1_100);
    expect(cycles()).toBe(3);
    // A change reported during a cycle is not lost: an early cycle follows it at once.
    await vi.advanceTimersByTimeAsync(10_000);
    expect(cycles()).toBe(3);
    remote.state.delayMs = 1_000;
    void engine.syncNow();
    await vi.advanceTimersByTimeAsync(10);
    expect(cycles()).toBe(4);
    reported.next({ origins: null });
    remote.state.delayMs = 0;
    while (engine.getStatus().phase !== "idle") await vi.advanceTimersByTimeAsync(100);
    await vi.advanceTimersByTimeAsync(100);
    expect(cycles()).toBe(5);
    // Without changes, the interval.
    await vi.advanceTimersByTimeAsync(19_000);
    expect(cycles()).toBe(5);
    await vi.advanceTimersByTimeAsync(2_000);
    expect(cycles()).toBe(6);
    // A failed cycle's backoff (5 s) is not cut short by changes.
    remote.state.down = true;
    await vi.advanceTimersByTimeAsync(20_000);
    expect(cycles()).toBe(7);
    expect(engine.getStatus().consecutiveFailures).toBe(1);
    reported.next({ origins: null });
    await vi.advanceTimersByTimeAsync(3_500);
    expect(cycles()).toBe(7);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(cycles()).toBe(8);
    await engine.stop();
    expect(reported.observed).toBe(false);
  });

  it("stop() lets the cycle in flight finish, then completes its streams", async () => {
    const local = scriptedPeer("clinic");
    const remote = scriptedPeer("cloud");
    remote.state.delayMs = 2_000;
    const engine = createSyncEngine({ local: local.peer, remote: remote.peer, intervalMs: 60_000 });
    const statuses = lastValueFrom(engine.status$.pipe(toArray()));
    await vi.advanceTimersByTimeAsync(100);
    expect(engine.getStatus().phase).toBe("pulling");
    const stopped = engine.stop();
    await vi.advanceTimersByTimeAsync(20_000);
    await stopped;
    const seen = await statuses;
    expect(seen.at(-1)?.phase).toBe("stopped");
    expect(remote.state.running).toBe(0);
    expect(await engine.syncNow()).toMatchObject({ phase: "stopped" });
  });

  it("polls every quietIntervalMs while both change feeds listen, and every intervalMs from the moment one drops", async () => {
    const local = scriptedPeer("clinic");
    const remote = scriptedPeer("cloud");
    const feeds = { clinic: new Subject<ChangeNotice>(), cloud: new Subject<ChangeNotice>() };
    const listening = { clinic: true, cloud: true };
    const engine = createSyncEngine({
      local: { ...local.peer, changes$: feeds.clinic, listening: () => listening.clinic },
      remote: { ...remote.peer, changes$: feeds.cloud, listening: () => listening.cloud },
      intervalMs: 1_000,
      quietIntervalMs: 15_000,
    });
    const pulls = () => remote.state.pullCalls;
    await vi.advanceTimersByTimeAsync(100);
    expect(pulls()).toBe(1);
    expect(Date.parse(engine.getStatus().nextCycleAt ?? "") - Date.now()).toBe(14_900);
    await vi.advanceTimersByTimeAsync(14_800);
    expect(pulls()).toBe(1);
    await vi.advanceTimersByTimeAsync(200);
    expect(pulls()).toBe(2);
    // Realtime drops mid-wait: the feed says so, which starts a cycle; then the plain interval.
    await vi.advanceTimersByTimeAsync(5_000);
    listening.cloud = false;
    feeds.cloud.next({ origins: null });
    await vi.advanceTimersByTimeAsync(10);
    expect(pulls()).toBe(3);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(pulls()).toBe(4);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(pulls()).toBe(5);
    // A peer that cannot say (no `listening`) counts as not listening.
    listening.cloud = true;
    const plain = createSyncEngine({
      local: { ...local.peer, changes$: feeds.clinic },
      remote: { ...remote.peer, changes$: feeds.cloud, listening: () => true },
      intervalMs: 1_000,
      quietIntervalMs: 15_000,
    });
    await vi.advanceTimersByTimeAsync(100);
    expect(Date.parse(plain.getStatus().nextCycleAt ?? "") - Date.now()).toBe(900);
    await Promise.all([engine.stop(), plain.stop()]);
  });

  it("a cycle only the clinic server's change started pushes without pulling the cloud while the cloud's feed is joined and silent", async () => {
    const local = scriptedPeer("clinic");
    const remote = scriptedPeer("cloud");
    const feeds = { clinic: new Subject<ChangeNotice>(), cloud: new Subject<ChangeNotice>() };
    const listening = { clinic: true, cloud: true };
    const engine = createSyncEngine({
      local: { ...local.peer, changes$: feeds.clinic, listening: () => listening.clinic },
      remote: { ...remote.peer, changes$: feeds.cloud, listening: () => listening.cloud },
      intervalMs: 1_000,
      quietIntervalMs: 30_000,
      wakeGapMs: 1_000,
    });
    const pulls = () => ({ cloud: remote.state.pullCalls, clinic: local.state.pullCalls });
    await vi.advanceTimersByTimeAsync(100);
    expect(pulls()).toEqual({ cloud: 1, clinic: 1 });
    // The clinic server wrote: its changes go up, the cloud is not asked for its own.
    feeds.clinic.next({ origins: null });
    await vi.advanceTimersByTimeAsync(1_000);
    expect(pulls()).toEqual({ cloud: 1, clinic: 2 });
    expect(engine.getStatus()).toMatchObject({ lastError: null, pendingDown: 0 });
    // The cloud wrote too, in the same wait: both are asked.
    feeds.clinic.next({ origins: null });
    feeds.cloud.next({ origins: null });
    await vi.advanceTimersByTimeAsync(1_000);
    expect(pulls()).toEqual({ cloud: 2, clinic: 3 });
    // The cloud's feed is down: it cannot vouch for the cloud, so every cycle asks it.
    listening.cloud = false;
    feeds.clinic.next({ origins: null });
    await vi.advanceTimersByTimeAsync(1_000);
    const down = pulls();
    expect(down.cloud - 2).toBe(down.clinic - 3);
    expect(down.cloud).toBeGreaterThan(2);
    // Joined again: the feed says so (a wake-up with unknown origins), and that cycle pulls; the
    // next one the clinic server starts does not.
    listening.cloud = true;
    feeds.cloud.next({ origins: null });
    await vi.advanceTimersByTimeAsync(1_000);
    expect(pulls()).toEqual({ cloud: down.cloud + 1, clinic: down.clinic + 1 });
    feeds.clinic.next({ origins: null });
    await vi.advanceTimersByTimeAsync(1_000);
    expect(pulls()).toEqual({ cloud: down.cloud + 1, clinic: down.clinic + 2 });
    // A pull that failed leaves the next clinic-started cycle (after the backoff) pulling.
    remote.state.down = true;
    void engine.syncNow();
    await vi.advanceTimersByTimeAsync(10);
    expect(engine.getStatus().consecutiveFailures).toBe(1);
    remote.state.down = false;
    const before = pulls().cloud;
    await vi.advanceTimersByTimeAsync(60_000);
    expect(pulls().cloud).toBeGreaterThan(before);
    feeds.clinic.next({ origins: null });
    const settled = pulls().cloud;
    await vi.advanceTimersByTimeAsync(1_000);
    expect(pulls().cloud).toBe(settled);
    // The quiet interval's own cycle pulls.
    await vi.advanceTimersByTimeAsync(30_000);
    expect(pulls().cloud).toBe(settled + 1);
    await engine.stop();
  });

  it("an idle cycle asks the cloud once (a pull) and the clinic server once who it is and once its record of the cloud; the cloud's identity and its record of the clinic server once a minute", async () => {
    const local = scriptedPeer("clinic");
    const remote = scriptedPeer("cloud");
    const engine = createSyncEngine({
      local: local.peer,
      remote: remote.peer,
      intervalMs: 1_000,
      idleCursorSaveMs: 3_600_000,
    });
    await vi.advanceTimersByTimeAsync(100);
    const calls = () => {
      const { nodeCalls, cursorCalls, pullCalls, pendingCalls, ackCalls } = remote.state;
      return { nodeCalls, cursorCalls, pullCalls, pendingCalls, ackCalls };
    };
    const first = calls();
    // The first cycle acknowledges what the clinic server held before it, then what it pulled.
    expect(first).toEqual({ nodeCalls: 1, cursorCalls: 1, pullCalls: 1, pendingCalls: 0, ackCalls: 2 });
    await vi.advanceTimersByTimeAsync(59_000);
    // The cloud's record of the clinic server, as the first cycle read it and moved it since.
    expect(calls()).toEqual({ ...first, pullCalls: 60 });
    // The clinic server's identity once per cycle: its open conflicts as read at the start serve
    // the status when the cycle recorded none.
    expect(local.state.nodeCalls).toBe(60);
    expect(local.state.cursorCalls).toBe(60);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(remote.state.nodeCalls).toBe(2);
    expect(remote.state.cursorCalls).toBe(2);
    // A failed cycle reads both again at the next one.
    remote.state.down = true;
    await vi.advanceTimersByTimeAsync(1_000);
    remote.state.down = false;
    const before = calls();
    await engine.syncNow();
    expect(remote.state.nodeCalls).toBe(before.nodeCalls + 1);
    expect(remote.state.cursorCalls).toBe(before.cursorCalls + 1);
    await engine.stop();
  });
});
