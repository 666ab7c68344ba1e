import { randomUUID } from "node:crypto";
import { createFixtures } from "@centrovision/testkit/contract";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
  type ConnectionMode,
  CvError,
  createFailoverRouter,
  type FailoverRouter,
  type RouterConfigInput,
  type RouterHooks,
  type TableName,
} from "../src/index.js";
import type { RouterCallContext } from "../src/router/router-call.js";
import { createFaultySource, type FaultySource } from "./support/faulty-source.js";
import { settle, threeTiers, waitFor } from "./support/virtual-router.js";

const fixtures = createFixtures();
let cloud: FaultySource;
let clinic: FaultySource;
let device: FaultySource;
let router: FailoverRouter;

function start(hooks?: RouterHooks, config?: RouterConfigInput) {
  ({ cloud, clinic, device, router } = threeTiers(hooks, config));
}

const mode = (m: ConnectionMode) => () => router.getStatus().mode === m;

beforeEach(() => {
  vi.useFakeTimers();
});

afterEach(async () => {
  await router.close();
  vi.useRealTimers();
});

describe("failover timing", () => {
  for (const [fault, bound] of [
    ["blackhole", 3_000],
    ["refuse", 1_500],
  ] as const) {
    it(`moves calls to the clinic within ${bound} ms when the cloud is ${fault}d, whatever the probe phase`, async () => {
      const times: number[] = [];
      for (let phase = 0; phase < 1_000; phase += 125) {
        start();
        await vi.advanceTimersByTimeAsync(2_000 + phase);
        expect(router.getStatus().mode).toBe("supabase");
        cloud.fault = fault;
        times.push(await waitFor(mode("local")));
        expect(router.getStatus().reason).toMatch(/^cloud stopped answering/);
        await router.close();
      }
      expect(Math.max(...times)).toBeLessThanOrEqual(bound);
      start();
    });
  }

  it("does not switch for one lost probe", async () => {
    start();
    await vi.advanceTimersByTimeAsync(2_000);
    const seen = new Set<ConnectionMode>();
    router.status$.subscribe((status) => seen.add(status.mode));
    cloud.fault = "blackhole";
    await vi.advanceTimersByTimeAsync(1_000);
    cloud.fault = "none";
    await vi.advanceTimersByTimeAsync(10_000);
    expect([...seen]).toEqual(["supabase"]);
    expect(router.counters().switches).toBe(0);
  });

  it("does not flap with a link that flaps every 3 s: it fails over once and stays", async () => {
    start();
    await vi.advanceTimersByTimeAsync(2_000);
    for (let i = 0; i < 40; i++) {
      cloud.fault = i % 2 === 0 ? "refuse" : "none";
      await vi.advanceTimersByTimeAsync(3_000);
    }
    expect(router.counters().switches).toBe(1);
    expect(router.getStatus().mode).toBe("local");
  });

  it("comes back to the cloud only after rise probes and the hold-down, by itself", async () => {
    start();
    await vi.advanceTimersByTimeAsync(2_000);
    cloud.fault = "refuse";
    await waitFor(mode("local"));
    cloud.fault = "none";
    const back = await waitFor(mode("supabase"));
    expect(back).toBeGreaterThanOrEqual(10_000);
    expect(back).toBeLessThan(20_000);
    expect(router.getStatus().reason).toBe("cloud answers again");
  });

  it("goes to the PC's own file when the clinic server is down too, and back up tier by tier", async () => {
    start();
    await vi.advanceTimersByTimeAsync(2_000);
    cloud.fault = "refuse";
    clinic.fault = "blackhole";
    await waitFor(mode("offline"));
    expect(router.getStatus().tiers.clinic.health).toBe("down");
    clinic.fault = "none";
    await waitFor(mode("local"));
    cloud.fault = "none";
    await waitFor(mode("supabase"));
  });
});

describe("calls", () => {
  it("retries a read whose tier dies in flight on the next tier, within its deadline", async () => {
    start();
    await vi.advanceTimersByTimeAsync(2_000);
    const branch = fixtures.branch();
    await clinic.inner.table("branches").insert(branch);
    cloud.fault = "blackhole";
    const read = router.table("branches").get(branch.id, { timeoutMs: 5_000 });
    let result: unknown;
    read.then((row) => (result = row));
    const took = await waitFor(() => result !== undefined);
    expect(result).toMatchObject({ id: branch.id });
    expect(took).toBeLessThanOrEqual(3_000);
  });

  it("retries a write on the next tier with the same version, and reconciles the unknown outcome", async () => {
    const reconciled: string[] = [];
    start({ onReconciled: (_write, outcome) => reconciled.push(outcome) });
    await vi.advanceTimersByTimeAsync(2_000);
    cloud.fault = "blackhole";
    const branch = fixtures.branch();
    const write = router.table("branches").upsert(branch);
    let written: { version: string } | undefined;
    write.then((row) => (written = row));
    await waitFor(() => written !== undefined);
    expect(cloud.inner.store.row("branches", branch.id)).toBeNull();
    expect(clinic.inner.store.row("branches", branch.id)).toMatchObject({ version: written?.version });
    expect(router.counters().unknownWrites).toBe(1);
    cloud.fault = "none";
    await waitFor(() => reconciled.length > 0);
    expect(reconciled).toEqual(["not_landed"]);
  });

  it("keeps every write waiting to be reconciled when one lookup fails, and reconciles them all later", async () => {
    const reconciled: string[] = [];
    start({ onReconciled: (_write, outcome) => reconciled.push(outcome) });
    await vi.advanceTimersByTimeAsync(2_000);
    cloud.fault = "blackhole";
    const branches = [fixtures.branch(), fixtures.branch(), fixtures.branch()];
    let written = 0;
    for (const branch of branches)
      void router
        .table("branches")
        .upsert(branch)
        .then(() => written++);
    await waitFor(() => written === branches.length);
    expect(router.counters().unknownWrites).toBe(3);
    // The cloud answers again, but the first lookup is lost.
    cloud.failGets = 1;
    cloud.fault = "none";
    await waitFor(() => router.getStatus().tiers.cloud.health === "up");
    await vi.advanceTimersByTimeAsync(100);
    // A flap later, the writes still waiting are looked up again: none was dropped.
    cloud.fault = "refuse";
    await waitFor(() => router.getStatus().tiers.cloud.health === "down");
    cloud.fault = "none";
    await waitFor(() => reconciled.length === branches.length);
    expect(reconciled).toEqual(["not_landed", "not_landed", "not_landed"]);
  });

  it("does not fail over on a constraint or validation error", async () => {
    start();
    await vi.advanceTimersByTimeAsync(2_000);
    const orphan = fixtures.patient(randomUUID());
    await expect(router.table("patients").insert(orphan)).rejects.toMatchObject({ code: "constraint" });
    await expect(router.table("patients").insert({ ...orphan, id: "x" })).rejects.toMatchObject({
      code: "invalid_input",
    });
    expect(clinic.calls).toBe(0);
    expect(router.getStatus().mode).toBe("supabase");
  });

  it("does not fail over when the cloud answers but rejects the key: the status says so instead", async () => {
    start();
    await vi.advanceTimersByTimeAsync(2_000);
    cloud.fault = "unauthorized";
    await expect(router.table("patients").list({})).rejects.toMatchObject({ code: "unauthorized" });
    await vi.advanceTimersByTimeAsync(30_000);
    const status = router.getStatus();
    expect(status.mode).toBe("supabase");
    expect(status.tiers.cloud).toMatchObject({ health: "up", available: true });
    expect(status.tiers.cloud.lastError).toMatch(/^unauthorized: .*rejected the API key/);
    expect(clinic.calls).toBe(0);
  });

  it("carries this PC's recent cloud writes to the clinic server at failover (read-your-writes)", async () => {
    const carried: string[] = [];
    start({
      carryWrites: async (_from, to, writes) => {
        for (const write of writes) {
          if (write.row) await clinic.inner.table(write.table).upsert(write.row as never);
          carried.push(`${to}:${write.table}`);
        }
      },
    });
    await vi.advanceTimersByTimeAsync(2_000);
    const branch = await router.table("branches").insert(fixtures.branch());
    cloud.fault = "refuse";
    await waitFor(mode("local"));
    expect(carried).toEqual(["clinic:branches"]);
    expect(await router.table("branches").get(branch.id)).toEqual(branch);
  });

  it("carries to this PC's copy what both servers took, each write once, the latest per row; the PC's own writes never", async () => {
    const carried: string[] = [];
    start({
      carryWrites: async (from, to, writes) => {
        for (const write of writes) {
          const target = to === "clinic" ? clinic : device;
          if (write.row) await target.inner.table(write.table).upsert(write.row as never);
          carried.push(`${from}→${to}:${write.tier}:${write.id === first.id ? "first" : "second"}`);
        }
      },
    });
    await vi.advanceTimersByTimeAsync(2_000);
    const first = await router.table("branches").insert(fixtures.branch());
    cloud.fault = "refuse";
    await waitFor(mode("local"));
    // Written on the clinic server: the cloud's journal entry for `first` is superseded.
    const updated = await router.table("branches").update(first.id, { name: "Sucursal Norte" });
    const second = await router.table("branches").insert(fixtures.branch());
    carried.length = 0;
    clinic.fault = "refuse";
    await waitFor(mode("offline"));
    expect(carried).toEqual(["clinic→device:clinic:first", "clinic→device:clinic:second"]);
    expect(await router.table("branches").get(first.id)).toEqual(updated);
    expect(await router.table("branches").get(second.id)).toEqual(second);

    // Written on this PC: nothing to carry anywhere when the clinic server answers again.
    await router.table("branches").insert(fixtures.branch());
    carried.length = 0;
    clinic.fault = "none";
    cloud.fault = "none";
    await waitFor(mode("supabase"));
    cloud.fault = "refuse";
    await waitFor(mode("local"));
    expect(carried).toEqual([]);
  });

  it("carries a write a server acknowledged after the router had left it (the call was in flight at the switch)", async () => {
    const carried: string[] = [];
    start({
      carryWrites: async (from, to, writes) => {
        carried.push(...writes.map((w) => `${from}→${to}:${w.tier}:${w.table}`));
      },
    });
    await vi.advanceTimersByTimeAsync(2_000);
    cloud.fault = "refuse";
    clinic.fault = "refuse";
    await waitFor(mode("offline"));
    // What the routed repository reports once the clinic server's answer arrives.
    const context = router as unknown as RouterCallContext;
    const row = fixtures.branch();
    context.recordWrite({ tier: 1, attempt: 0, forgotten: 0 }, [
      { table: "branches", op: "upsert", id: row.id, row },
    ]);
    expect(carried).toEqual(["clinic→device:clinic:branches"]);
    // Written on the tier in use: nothing to carry.
    context.recordWrite({ tier: 2, attempt: 0, forgotten: 0 }, [
      { table: "branches", op: "upsert", id: row.id, row },
    ]);
    expect(carried).toHaveLength(1);
  });

  it("shows what has not reached the cloud: the count of the tier it works on and this PC's outbox, never a tier it left", async () => {
    const pending = { cloud: 0, clinic: 68, device: 160 };
    start({ pendingChanges: async (tier) => pending[tier] });
    await waitFor(() => router.getStatus().pendingChanges === 160);
    expect(router.getStatus().mode).toBe("supabase");
    const seen: [string, number][] = [];
    router.status$.subscribe((status) => seen.push([status.mode, status.pendingChanges]));
    cloud.fault = "refuse";
    await waitFor(mode("local"));
    await waitFor(() => router.getStatus().pendingChanges === 68 + 160);
    clinic.fault = "refuse";
    await waitFor(mode("offline"));
    // The device's count is read at every tick: exact at the switch itself.
    expect(router.getStatus().pendingChanges).toBe(160);
    expect(seen.filter(([m, n]) => m === "offline" && n !== 160)).toEqual([]);
    expect(seen.filter(([m, n]) => m === "local" && n !== 68 + 160 && n !== 160)).toEqual([]);
  });
});

describe("hedged reads", () => {
  /** Healthy reads on the cloud, so the hedge delay follows its latency instead of the cap. */
  async function warmUp(reads = 20) {
    const branch = fixtures.branch();
    await cloud.inner.table("branches").insert(branch);
    for (let i = 0; i < reads; i++) await settle(router.table("branches").get(branch.id));
  }

  it("asks the clinic server too when the cloud has not answered within the delay, and the first answer wins", async () => {
    start();
    await vi.advanceTimersByTimeAsync(2_000);
    await warmUp();
    const branch = await clinic.inner.table("branches").insert(fixtures.branch());
    cloud.fault = "blackhole";
    const read = await settle(router.table("branches").get(branch.id));
    expect(read.value).toEqual(branch);
    // The floor (300 ms): the cloud answered at once until now, so 3 × its p95 is below it.
    expect(read.took).toBeGreaterThanOrEqual(300);
    expect(read.took).toBeLessThan(400);
    expect(router.counters()).toMatchObject({ hedgedReads: 1, hedgesWon: 1 });
    expect(router.getStatus().mode).toBe("supabase");
  });

  it("waits a multiple of the cloud's recent p95 before hedging, within the cap, and the cap before it knows", async () => {
    start();
    await vi.advanceTimersByTimeAsync(2_000);
    const branch = fixtures.branch();
    await clinic.inner.table("branches").insert(branch);
    cloud.fault = "blackhole";
    expect((await settle(router.table("branches").get(branch.id))).took).toBeGreaterThanOrEqual(1_000);
    await waitFor(mode("local"));
    await router.close();

    for (const [latencyMs, expected] of [
      [200, 600],
      [500, 1_000],
    ] as const) {
      start();
      await vi.advanceTimersByTimeAsync(2_000);
      cloud.latencyMs = latencyMs;
      await warmUp();
      const row = await clinic.inner.table("branches").insert(fixtures.branch());
      cloud.fault = "blackhole";
      const read = await settle(router.table("branches").get(row.id));
      expect(read.value).toEqual(row);
      expect(read.took).toBeGreaterThanOrEqual(expected);
      expect(read.took).toBeLessThan(expected + 100);
      await router.close();
    }
    start();
  });

  /**
   * The clinic server up for its probes but failing this person's reads with `error` (by default a
   * refusal: no clinic session yet); counts them.
   */
  function clinicFailsReads(
    error = new CvError("unauthorized", "[test] clinic: no session for this person"),
  ) {
    const refused = { count: 0 };
    const table = clinic.table.bind(clinic);
    clinic.table = ((name: TableName) => ({
      ...table(name),
      get: async () => {
        refused.count++;
        throw error;
      },
    })) as typeof clinic.table;
    return refused;
  }

  it("lets no refusal of the person by the lower tier win: the slow cloud's answer does", async () => {
    start();
    await vi.advanceTimersByTimeAsync(2_000);
    await warmUp();
    const branch = await cloud.inner.table("branches").insert(fixtures.branch());
    clinicFailsReads();
    cloud.latencyMs = 1_000;
    const read = await settle(router.table("branches").get(branch.id));
    expect(read.error).toBeUndefined();
    expect(read.value).toEqual(branch);
    expect(read.took).toBeGreaterThanOrEqual(1_000);
    expect(router.counters()).toMatchObject({ hedgedReads: 1, hedgesWon: 0 });
  });

  it("asks a tier that refused the person no more in that call: with the cloud lost, the read goes below it", async () => {
    start();
    await vi.advanceTimersByTimeAsync(2_000);
    await warmUp();
    const branch = await device.inner.table("branches").insert(fixtures.branch());
    const refused = clinicFailsReads();
    cloud.fault = "blackhole";
    const read = await settle(router.table("branches").get(branch.id));
    expect(read.value).toEqual(branch);
    expect(refused.count).toBe(1);
  });

  it("lets no error of the lower tier's own win either: a tier set up wrong", async () => {
    start();
    await vi.advanceTimersByTimeAsync(2_000);
    await warmUp();
    const branch = await cloud.inner.table("branches").insert(fixtures.branch());
    clinicFailsReads(new CvError("invalid_config", "[test] clinic: its certificate does not match its name"));
    cloud.latencyMs = 1_000;
    const read = await settle(router.table("branches").get(branch.id));
    expect(read.value).toEqual(branch);
    expect(router.counters()).toMatchObject({ hedgedReads: 1, hedgesWon: 0 });
  });

  it("still answers with the lower tier's unknown error at once: it may be about the read", async () => {
    start();
    await vi.advanceTimersByTimeAsync(2_000);
    await warmUp();
    clinicFailsReads(new CvError("unknown", "[test] clinic: too many SQL variables"));
    cloud.fault = "blackhole";
    const read = await settle(router.table("branches").get(randomUUID()));
    expect(read.error).toMatchObject({ code: "unknown" });
    expect(read.took).toBeLessThan(400);
  });

  it("answers with the lower tier's refusal, not a timeout, when the cloud is not found down in time", async () => {
    start();
    await vi.advanceTimersByTimeAsync(2_000);
    await warmUp();
    const refused = clinicFailsReads();
    cloud.fault = "blackhole";
    const read = await settle(router.table("branches").get(randomUUID(), { timeoutMs: 1_500 }));
    expect(read.error).toMatchObject({ code: "unauthorized" });
    expect(read.took).toBeLessThanOrEqual(1_600);
    expect(refused.count).toBe(1);
  });

  it("stays off while the cloud answers, slow or fast", async () => {
    start();
    await vi.advanceTimersByTimeAsync(2_000);
    cloud.latencyMs = 80;
    await warmUp(200);
    cloud.latencyMs = 0;
    await warmUp(200);
    expect(router.counters()).toMatchObject({ hedgedReads: 0, hedgesWon: 0 });
    expect(clinic.calls).toBe(0);
  });

  it("never hedges a write: the clinic server sees it only after the cloud's try has failed", async () => {
    start();
    await vi.advanceTimersByTimeAsync(2_000);
    await warmUp();
    cloud.fault = "blackhole";
    const write = router.table("branches").insert(fixtures.branch());
    await vi.advanceTimersByTimeAsync(1_000);
    expect(clinic.calls).toBe(0);
    expect((await settle(write)).value).toBeDefined();
    expect(clinic.calls).toBe(1);
    expect(router.counters().hedgedReads).toBe(0);
  });

  it("carries this PC's recent cloud writes to the clinic server before a hedged read runs there (read-your-writes)", async () => {
    const carried: string[] = [];
    start({
      carryWrites: async (from, to, writes) => {
        for (const write of writes) {
          if (write.row) await clinic.inner.table(write.table).upsert(write.row as never);
          carried.push(`${from}→${to}:${write.id}`);
        }
      },
    });
    await vi.advanceTimersByTimeAsync(2_000);
    await warmUp();
    const branch = await router.table("branches").insert(fixtures.branch());
    const renamed = await router.table("branches").update(branch.id, { name: "Sede Norte (nueva)" });
    cloud.fault = "blackhole";
    const read = await settle(router.table("branches").get(branch.id));
    expect(read.value).toEqual(renamed);
    expect(router.counters().hedgesWon).toBe(1);
    // Carried once, the latest version; a second hedged read carries nothing again.
    await settle(router.table("branches").get(branch.id));
    expect(carried).toEqual([`cloud→clinic:${branch.id}`]);
  });

  it("does not hedge when this PC's recent writes cannot reach the lower tier first", async () => {
    for (const hooks of [
      {},
      {
        carryWrites: async () => {
          throw new Error("the clinic server refused the carry");
        },
      },
    ]) {
      start(hooks);
      await vi.advanceTimersByTimeAsync(2_000);
      await warmUp();
      const branch = await router.table("branches").insert(fixtures.branch());
      cloud.fault = "blackhole";
      // Served by the clinic only once the cloud's try has failed (failover), not at the hedge delay.
      const read = await settle(router.table("branches").get(branch.id));
      expect(read.took).toBeGreaterThan(1_000);
      expect(router.counters()).toMatchObject({ hedgedReads: 1, hedgesWon: 0 });
      await router.close();
    }
    start();
  });

  it("does not hedge when no lower tier is up, or when hedging is turned off", async () => {
    start();
    await vi.advanceTimersByTimeAsync(2_000);
    await warmUp();
    clinic.fault = "refuse";
    device.fault = "refuse";
    await waitFor(() => router.getStatus().tiers.device.health === "down");
    cloud.fault = "blackhole";
    await settle(router.table("branches").get(randomUUID()));
    expect(router.counters().hedgedReads).toBe(0);
    await router.close();

    start(undefined, { hedgeReads: false });
    await vi.advanceTimersByTimeAsync(2_000);
    await warmUp();
    cloud.fault = "blackhole";
    await settle(router.table("branches").get(randomUUID()));
    expect(router.counters().hedgedReads).toBe(0);
  });

  it("passes an error that is an answer straight through, without waiting for the other tier", async () => {
    start();
    await vi.advanceTimersByTimeAsync(2_000);
    await warmUp();
    cloud.fault = "unauthorized";
    const read = await settle(router.table("branches").get(randomUUID()));
    expect(read.error).toMatchObject({ code: "unauthorized" });
    expect(read.took).toBeLessThan(50);
    expect(router.counters().hedgedReads).toBe(0);
  });
});

describe("the servers' view", () => {
  it("fails over among the servers, and never answers from this PC's copy, which the router itself serves", async () => {
    start();
    await vi.advanceTimersByTimeAsync(2_000);
    const servers = router.servers();
    const onClinic = await clinic.inner.table("branches").insert(fixtures.branch());
    const onDevice = await device.inner.table("branches").insert(fixtures.branch());
    cloud.fault = "refuse";
    expect((await settle(servers.table("branches").get(onClinic.id))).value).toEqual(onClinic);
    clinic.fault = "refuse";
    const refused = await settle(servers.table("branches").get(onDevice.id));
    expect(refused.error).toMatchObject({ code: "unavailable" });
    expect((await settle(servers.probe())).error).toMatchObject({ code: "unavailable" });
    expect((await settle(router.table("branches").get(onDevice.id))).value).toEqual(onDevice);
    // Offline, it still asks the servers, and answers again once one is back.
    await waitFor(mode("offline"));
    expect((await settle(servers.table("branches").get(onDevice.id))).error).toMatchObject({
      code: "unavailable",
    });
    clinic.fault = "none";
    await waitFor(mode("local"));
    expect((await settle(servers.table("branches").get(onClinic.id))).value).toEqual(onClinic);
  });

  it("hedges a slow clinic server's read to no tier: the copy below it never answers", async () => {
    start();
    await vi.advanceTimersByTimeAsync(2_000);
    cloud.fault = "refuse";
    await waitFor(mode("local"));
    const branch = fixtures.branch();
    await clinic.inner.table("branches").insert(branch);
    await device.inner.table("branches").insert({ ...branch, name: "the copy's" });
    for (let i = 0; i < 20; i++) await settle(router.servers().table("branches").get(branch.id));
    clinic.fault = "blackhole";
    const read = await settle(router.servers().table("branches").get(branch.id, { timeoutMs: 10_000 }));
    expect(read.value).toBeUndefined();
    expect(router.counters()).toMatchObject({ hedgedReads: 0 });
    // Through the router itself, the same read is hedged to the copy.
    clinic.fault = "none";
    await waitFor(mode("local"));
    for (let i = 0; i < 20; i++) await settle(router.table("branches").get(branch.id));
    clinic.fault = "blackhole";
    expect((await settle(router.table("branches").get(branch.id))).value).toMatchObject({
      name: "the copy's",
    });
    expect(router.counters()).toMatchObject({ hedgedReads: 1, hedgesWon: 1 });
  });
});

describe("failback and pinning", () => {
  it("waits until the clinic server has pushed its outage writes before going back to the cloud", async () => {
    let pending = 3;
    start({ pendingChanges: async (tier) => (tier === "clinic" ? pending : 0) });
    await vi.advanceTimersByTimeAsync(2_000);
    cloud.fault = "refuse";
    await waitFor(mode("local"));
    await waitFor(() => router.getStatus().pendingChanges === 3);
    cloud.fault = "none";
    await vi.advanceTimersByTimeAsync(60_000);
    expect(router.getStatus()).toMatchObject({
      mode: "local",
      reason: expect.stringMatching(/3 pending changes/),
    });
    pending = 0;
    await waitFor(mode("supabase"), 10_000);
  });

  it("asks about failback with the same `since` for one wait, and a new one for the next", async () => {
    const asked: (number | undefined)[] = [];
    start({
      pendingChanges: async (tier, failback) => {
        if (tier === "clinic" && failback) asked.push(failback.since);
        return 0;
      },
    });
    for (let outage = 0; outage < 2; outage++) {
      await vi.advanceTimersByTimeAsync(2_000);
      cloud.fault = "refuse";
      await waitFor(mode("local"));
      cloud.fault = "none";
      await waitFor(mode("supabase"));
    }
    const waits = [...new Set(asked)];
    expect(waits).toHaveLength(2);
    expect((waits[1] as number) > (waits[0] as number)).toBe(true);
  });

  it("pins a tier by hand and unpins", async () => {
    start();
    await vi.advanceTimersByTimeAsync(2_000);
    router.pin("clinic");
    expect(router.getStatus()).toMatchObject({ mode: "local", pinned: "clinic" });
    await router.table("branches").insert(fixtures.branch());
    expect(clinic.inner.store.count("branches")).toBe(1);
    router.unpin();
    await waitFor(mode("supabase"), 5_000);
    expect(() => router.pin("nowhere" as never)).toThrow(/no such tier/);
  });

  it("pins the lower tier and says why after too many switches", async () => {
    start(undefined, { maxSwitches: 2, holdDownMs: 1_000, rise: 1, flapPinMs: 120_000 });
    await vi.advanceTimersByTimeAsync(2_000);
    cloud.fault = "refuse";
    await waitFor(mode("local"));
    cloud.fault = "none";
    await waitFor(mode("supabase"));
    cloud.fault = "refuse";
    await waitFor(mode("local"));
    cloud.fault = "none";
    await vi.advanceTimersByTimeAsync(30_000);
    expect(router.getStatus()).toMatchObject({ mode: "local", pinned: "clinic" });
    expect(router.getStatus().reason).toMatch(/unstable/);
    await waitFor(mode("supabase"), 200_000, 100);
  });
});

describe("config", () => {
  it("lists every bad option with its path", () => {
    const sources = [createFaultySource("a")];
    const bad = () =>
      createFailoverRouter({ sources, config: { fall: 0, probeTimeoutMs: -1, bogus: 1 } as never });
    expect(bad).toThrow(/fall: Too small/);
    expect(bad).toThrow(/probeTimeoutMs: Too small/);
    expect(bad).toThrow(/bogus: unknown option/);
    expect(() => createFailoverRouter({ sources, config: { hedgeFloorMs: 2_000 } })).toThrow(
      /hedgeFloorMs: hedgeFloorMs must not be above hedgeMaxMs/,
    );
    expect(() => createFailoverRouter({ sources: [] })).toThrow(/1 to 3 sources/);
    start();
  });
});
