import { createFixtures } from "@centrovision/testkit/contract";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { ConnectionMode, FailoverRouter, RouterConfigInput, RouterHooks } from "../src/index.js";
import type { FaultySource } from "./support/faulty-source.js";
import { settle, threeTiers, waitFor } from "./support/virtual-router.js";

/*
 * The router's lift (`liftWrites`): a write a lower tier took while the router stays on its tier,
 * and at a failback the journal's writes the tier below took; what calls do meanwhile; and
 * `forgetWrites` at a change of person. Memory tiers behind switchable faults, virtual time.
 */

const fixtures = createFixtures();
let cloud: FaultySource;
let clinic: FaultySource;
let device: FaultySource;
let router: FailoverRouter;

function start(hooks?: RouterHooks, config?: RouterConfigInput) {
  ({ cloud, clinic, device, router } = threeTiers(hooks, config));
}

const mode = (m: ConnectionMode) => () => router.getStatus().mode === m;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Writes a branch while the cloud refuses that one call: the next tier up takes it. */
async function writeBelow() {
  await vi.advanceTimersByTimeAsync(2_000);
  cloud.fault = "refuse";
  const branch = await router.table("branches").insert(fixtures.branch());
  cloud.fault = "none";
  expect(router.getStatus().mode).toBe("supabase");
  return branch;
}

beforeEach(() => {
  vi.useFakeTimers();
});

afterEach(async () => {
  await router.close();
  vi.useRealTimers();
});

describe("a write a lower tier takes while the router stays on its tier", () => {
  it("is lifted to the cloud before the next call runs there, so a read sees it", async () => {
    const lifted: string[] = [];
    start({
      liftWrites: async (from, to, writes) => {
        await new Promise((resolve) => setTimeout(resolve, 300));
        for (const write of writes) await cloud.inner.table(write.table).upsert(write.row as never);
        lifted.push(...writes.map((w) => `${from}→${to}:${w.tier}:${w.table}`));
      },
    });
    const branch = await writeBelow();
    expect(await clinic.inner.table("branches").get(branch.id)).toEqual(branch);
    const read = router.table("branches").get(branch.id);
    await vi.advanceTimersByTimeAsync(300);
    expect(await read).toEqual(branch);
    expect(lifted).toEqual(["clinic→cloud:clinic:branches"]);
  });

  it("taken by this PC's file: counted as pending on the cloud until it is lifted there", async () => {
    const outbox = () => device.inner.store.count("branches");
    start({
      pendingChanges: async (tier) => (tier === "device" ? outbox() : 0),
      liftWrites: async (from, to) => {
        await new Promise((resolve) => setTimeout(resolve, 300));
        for (const row of await device.inner.table("branches").list({})) {
          await cloud.inner.table("branches").upsert(row);
          await device.inner.table("branches").delete(row.id);
        }
        expect([from, to]).toEqual(["device", "cloud"]);
      },
    });
    clinic.fault = "refuse";
    await waitFor(() => !router.getStatus().tiers.clinic.available);
    const branch = await writeBelow();
    await vi.advanceTimersByTimeAsync(10);
    expect(router.getStatus()).toMatchObject({ mode: "supabase", pendingChanges: 1 });
    const read = router.table("branches").get(branch.id);
    await vi.advanceTimersByTimeAsync(300);
    expect(await read).toEqual(branch);
    expect(router.getStatus()).toMatchObject({ mode: "supabase", pendingChanges: 0 });
  });

  it("taken by the clinic server before it stopped: lifted to the cloud at the failback", async () => {
    const lifted: string[] = [];
    start({
      liftWrites: async (from, to, writes) => {
        for (const write of writes) await cloud.inner.table(write.table).upsert(write.row as never);
        lifted.push(...writes.map((w) => `${from}→${to}:${w.tier}:${w.table}`));
      },
    });
    await vi.advanceTimersByTimeAsync(2_000);
    cloud.fault = "refuse";
    await waitFor(mode("local"));
    const branch = await router.table("branches").insert(fixtures.branch());
    clinic.fault = "refuse";
    await waitFor(mode("offline"));
    expect(lifted).toEqual([]);
    cloud.fault = "none";
    await waitFor(mode("supabase"));
    expect(lifted).toEqual(["clinic→cloud:clinic:branches"]);
    expect(await router.table("branches").get(branch.id)).toEqual(branch);
  });

  it("holds calls no longer than the cloud's hedge delay while a lift hangs; reads then go to the tier that took the write", async () => {
    start({ liftWrites: () => new Promise<void>(() => {}) });
    const branch = await writeBelow();
    // Fewer than 10 reads known: the hedge delay is its maximum, 1 s.
    const read = await settle(router.table("branches").get(branch.id));
    expect(read.value).toEqual(branch);
    expect(router.getStatus().mode).toBe("supabase");
    expect(read.took).toBeGreaterThanOrEqual(1_000);
    expect(read.took).toBeLessThanOrEqual(1_010);
  });

  it("holds calls no longer once the router leaves the tier it was lifting to", async () => {
    start({ liftWrites: () => new Promise<void>(() => {}) });
    const branch = await writeBelow();
    cloud.fault = "refuse";
    const read = await settle(router.table("branches").get(branch.id));
    expect(read.value).toEqual(branch);
    expect(router.getStatus().mode).toBe("local");
    expect(read.took).toBeLessThan(2_000);
  });

  it("a lift slower than the cloud's hedge delay: the next read, answered at once by the cloud, still shows the write", async () => {
    // The cloud answers reads at once (no hedge), but the lift, a different request (the cloud's
    // applier, cv_client_apply), takes 1.5 s: the hold ends at the hedge delay (1 s here, 300 ms
    // once ten reads are known), and the read goes to the clinic server, which took the write.
    start({
      liftWrites: async (_from, _to, writes) => {
        await sleep(1_500);
        for (const write of writes) await cloud.inner.table(write.table).upsert(write.row as never);
      },
    });
    const branch = await writeBelow();
    const read = await settle(router.table("branches").get(branch.id));
    expect(read.value).toEqual(branch);
  });
});

describe("a lift that fails", () => {
  it("is tried again every probe interval; meanwhile reads go to the clinic server, and the icon counts it", async () => {
    let tries = 0;
    start({
      liftWrites: async (_from, _to, writes) => {
        if (++tries === 1) throw new Error("[test] the cloud's applier timed out");
        for (const write of writes) await cloud.inner.table(write.table).upsert(write.row as never);
      },
    });
    const branch = await writeBelow();
    await vi.advanceTimersByTimeAsync(10);
    expect(router.getStatus()).toMatchObject({ mode: "supabase", pendingChanges: 1 });
    expect(await cloud.inner.table("branches").get(branch.id)).toBeNull();
    // The cloud lacks it: the read goes to the clinic server, which took it.
    expect((await settle(router.table("branches").get(branch.id))).value).toEqual(branch);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(tries).toBe(2);
    expect(await cloud.inner.table("branches").get(branch.id)).toEqual(branch);
    expect(router.getStatus()).toMatchObject({ mode: "supabase", pendingChanges: 0 });
  });

  it("stops once its writes are older than the journal's time (the clinic server's sync had that long)", async () => {
    let tries = 0;
    start(
      {
        liftWrites: async () => {
          tries++;
          throw new Error("[test] the cloud's applier refuses");
        },
      },
      { journalTtlMs: 5_000 },
    );
    await writeBelow();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(tries).toBe(5);
    expect(router.getStatus()).toMatchObject({ mode: "supabase", pendingChanges: 0 });
  });

  it("is not tried again after forgetWrites: the next person's session would send it", async () => {
    let tries = 0;
    start({
      liftWrites: async () => {
        tries++;
        throw new Error("[test] the cloud's applier refuses");
      },
    });
    await writeBelow();
    await vi.advanceTimersByTimeAsync(10);
    router.forgetWrites();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(tries).toBe(1);
    expect(router.getStatus()).toMatchObject({ mode: "supabase", pendingChanges: 0 });
  });
});

describe("another person signed in (forgetWrites)", () => {
  it("carries and lifts nothing written before forgetWrites (another person signed in since)", async () => {
    const moved: string[] = [];
    start({
      carryWrites: async (from, to, writes) => {
        moved.push(...writes.map((w) => `carry ${from}→${to}:${w.table}`));
      },
      liftWrites: async (from, to, writes) => {
        moved.push(...writes.map((w) => `lift ${from}→${to}:${w.table}`));
      },
    });
    await vi.advanceTimersByTimeAsync(2_000);
    await router.table("branches").insert(fixtures.branch());
    router.forgetWrites();
    cloud.fault = "refuse";
    await waitFor(mode("local"));
    await router.table("branches").insert(fixtures.branch());
    router.forgetWrites();
    clinic.fault = "refuse";
    await waitFor(mode("offline"));
    cloud.fault = "none";
    await waitFor(mode("supabase"));
    expect(moved).toEqual([]);
  });

  it("a write in flight when the person changes is not carried later under the next person's session", async () => {
    const moved: string[] = [];
    start({
      carryWrites: async (from, to, writes) => {
        moved.push(...writes.map((w) => `carry ${from}→${to}:${w.table}`));
      },
      liftWrites: async (from, to, writes) => {
        moved.push(...writes.map((w) => `lift ${from}→${to}:${w.table}`));
      },
    });
    await vi.advanceTimersByTimeAsync(2_000);
    // Person A's booking is slow to come back (a slow link); A signs out and B signs in meanwhile:
    // the desktop calls forgetWrites() in B's beforeSignedIn.
    cloud.latencyMs = 1_000;
    const write = settle(router.table("branches").insert(fixtures.branch()));
    await vi.advanceTimersByTimeAsync(500);
    router.forgetWrites();
    await write;
    cloud.latencyMs = 0;
    // Later, with B signed in, the cloud drops: the failover carries the journal to the clinic
    // server with B's clinic session.
    cloud.fault = "refuse";
    await waitFor(mode("local"));
    expect(moved).toEqual([]);
  });
});

describe("the lift at a failback", () => {
  it("a write already lifted to the cloud is not lifted again at the next failback", async () => {
    const lifted: string[] = [];
    start({
      liftWrites: async (from, to, writes) => {
        for (const write of writes) await cloud.inner.table(write.table).upsert(write.row as never);
        lifted.push(...writes.map((w) => `${from}→${to}:${w.id}`));
      },
    });
    const branch = await writeBelow();
    await vi.advanceTimersByTimeAsync(10);
    expect(lifted).toEqual([`clinic→cloud:${branch.id}`]);
    cloud.fault = "refuse";
    await waitFor(mode("local"));
    cloud.fault = "none";
    await waitFor(mode("supabase"));
    // 02b26d3 lifts the whole journal (up to 500 rows, 5 minutes) again at each failback.
    expect(lifted).toEqual([`clinic→cloud:${branch.id}`]);
  });

  it("a failback from a clinic server whose sync already sent everything (pending 0) does not hold the first calls on the cloud", async () => {
    let slow = false;
    start({
      pendingChanges: async () => 0,
      liftWrites: async () => {
        if (slow) await sleep(5_000);
      },
    });
    await vi.advanceTimersByTimeAsync(2_000);
    cloud.fault = "refuse";
    await waitFor(mode("local"));
    const branch = await router.table("branches").insert(fixtures.branch());
    await cloud.inner.table("branches").upsert(branch); // what the clinic's sync did
    slow = true;
    cloud.fault = "none";
    await waitFor(mode("supabase"));
    const read = await settle(router.table("branches").get(branch.id));
    expect(read.value).toEqual(branch);
    expect(read.took).toBeLessThanOrEqual(50);
  });
});

describe("a call held by a lift", () => {
  it("a call's own deadline bounds its wait for a lift's hold (200 ms, not the hedge delay of 1 s)", async () => {
    start({ liftWrites: () => new Promise<void>(() => {}) });
    const branch = await writeBelow();
    const outcome = await settle(router.table("branches").get(branch.id, { timeoutMs: 200 }));
    expect(outcome.took).toBeLessThanOrEqual(220);
  });

  it("a call its caller aborted stops waiting for a lift's hold", async () => {
    start({ liftWrites: () => new Promise<void>(() => {}) });
    const branch = await writeBelow();
    const controller = new AbortController();
    const read = settle(router.table("branches").get(branch.id, { signal: controller.signal }));
    await vi.advanceTimersByTimeAsync(50);
    controller.abort();
    const outcome = await read;
    expect(outcome.took).toBeLessThanOrEqual(70);
  });

  it("a call held by a lift ends at once when the router closes", async () => {
    start({ liftWrites: () => new Promise<void>(() => {}) });
    const branch = await writeBelow();
    const read = settle(router.table("branches").get(branch.id));
    await vi.advanceTimersByTimeAsync(10);
    await router.close();
    const outcome = await read;
    expect(outcome.error).toMatchObject({ code: "unavailable", message: expect.stringMatching(/closed/) });
    expect(outcome.took).toBeLessThanOrEqual(20);
  });
});
