import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ConnectionMode, DataSource, FailoverRouter, RouterConfigInput } from "@centrovision/core";
import { type PostgresServer, startPostgres } from "@centrovision/testkit";
import { consultation, insertConsultation, sharedServer } from "@centrovision/testkit/nodes";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type LiveLoad, type LoadReport, loadTag, underLoad, until } from "./load.js";
import { modeReached, type PcStack, startPcStack } from "./pc-stack.js";

/*
 * The failover router on a PC over the real tiers (see pc-stack.ts), under a steady load of reads
 * and writes, through every failure a clinic sees. After each: no call failed that a lower tier
 * could serve, and every acknowledged write is on the cloud and the clinic server exactly once
 * (or, written while both were gone, in the PC's SQLite file), checked by direct queries.
 *
 * Router numbers are shortened (the behaviour is under test, not the defaults: the bench measures
 * those); the hold-down stays longer than the flap period, as in the defaults.
 */
const FAST: RouterConfigInput = {
  probeIntervalMs: 250,
  suspectIntervalMs: 100,
  downIntervalMs: 300,
  probeTimeoutMs: 600,
  fall: 2,
  rise: 2,
  holdDownMs: 1_500,
  failbackCheckIntervalMs: 200,
  callTimeoutMs: 8_000,
};

let stack: PcStack;
// The clinic server runs on a PostgreSQL of its own, so a scenario can really stop and restart it.
let clinicDir: string;
let clinicServer: PostgresServer;
beforeAll(async () => {
  clinicDir = await mkdtemp(join(tmpdir(), "cv-router-clinic-"));
  clinicServer = await startPostgres({ dataDir: clinicDir });
  stack = await startPcStack(sharedServer(), { clinicServer });
}, 60_000);
afterAll(async () => {
  await stack?.close();
  await clinicServer?.stop();
  await rm(clinicDir, { recursive: true, force: true });
});
beforeEach(async () => {
  await Promise.all([stack.internet("pass"), stack.lan.pass()]);
});

async function tagged(sql: PcStack["cloudSql"], run: string): Promise<string[]> {
  const rows = await sql<
    { id: string }[]
  >`select id from appointments where reason = ${loadTag(run)} order by id`;
  return rows.map((row) => row.id);
}

async function presentIn(local: DataSource, ids: readonly string[]): Promise<boolean> {
  const rows = await Promise.all(ids.map((id) => local.table("appointments").get(id)));
  return rows.every((row) => row !== null);
}

/**
 * No failure reached a caller; once the sync settles, cloud and clinic hold the same rows, each an
 * acknowledged write (nothing doubled), every acknowledged write is there or, made while both
 * servers were gone, in the PC's SQLite file (nothing lost), and no write met itself as a conflict.
 */
async function expectNothingLostOrDoubled(report: LoadReport, run: string, local: DataSource): Promise<void> {
  expect(report.failures).toEqual([]);
  const acked = [...report.writes.keys()];
  let cloud: string[] = [];
  await until(
    async () => {
      const clinic = await tagged(stack.clinicSql, run);
      cloud = await tagged(stack.cloudSql, run);
      if (cloud.join() !== clinic.join()) return false;
      const missing = acked.filter((id) => !cloud.includes(id));
      return presentIn(local, missing);
    },
    20_000,
    "cloud and clinic to hold the same acknowledged writes",
  );
  expect(cloud.filter((id) => !report.writes.has(id))).toEqual([]);
  const [conflicts] = await stack.clinicSql<{ n: number }[]>`
    select count(*)::int as n from cv_sync.conflicts where row_id in ${stack.clinicSql(acked)}`;
  expect(conflicts?.n).toBe(0);
}

async function outageWritesOnCloudAtFailback(ids: readonly string[]): Promise<void> {
  const onCloud = await stack.cloudSql<{ n: number }[]>`
    select count(*)::int as n from appointments where id in ${stack.cloudSql(ids)}`;
  expect(onCloud[0]?.n).toBe(ids.length);
}

describe("the seed's four manual checks", () => {
  it("normal, failover, reconnection, no connection at all", async () => {
    const { router, local } = await stack.router(FAST);
    await modeReached(router, "supabase");

    // Normal: the cloud serves reads and writes.
    const patient = await router.table("patients").get(stack.seed.patients.id as string);
    expect(patient?.id).toBe(stack.seed.patients.id);
    const before = await router.table("appointments").insert(appointment("before the outage"));
    expect(await stack.cloudSql`select 1 from appointments where id = ${before.id}`).toHaveLength(1);

    // Failover: the daemon is already cut off, so only the router's carry can bring the
    // appointment made seconds before the outage to the clinic server (read-your-writes).
    await stack.daemonInternet.blackhole();
    const justBefore = await router.table("appointments").insert(appointment("seconds before the outage"));
    await stack.pcInternet.blackhole();
    await modeReached(router, "local");
    expect((await router.table("appointments").get(justBefore.id))?.version).toBe(justBefore.version);
    const during = await router.table("appointments").insert(appointment("during the outage"));
    expect(await stack.clinicSql`select 1 from appointments where id = ${during.id}`).toHaveLength(1);

    // Reconnection: back on the cloud only once the clinic's outage writes are there.
    await stack.internet("pass");
    await modeReached(router, "supabase", 20_000);
    await outageWritesOnCloudAtFailback([during.id]);

    // No connection at all: the PC's own file serves.
    await Promise.all([stack.internet("blackhole"), stack.lan.blackhole()]);
    await modeReached(router, "offline");
    expect((await router.table("patients").get(stack.seed.patients.id as string))?.id).toBe(
      stack.seed.patients.id,
    );
    const offline = await router.table("appointments").insert(appointment("nothing up"));
    expect(await local.table("appointments").get(offline.id)).not.toBeNull();
    await router.close();
  }, 60_000);
});

describe("hedged reads at a cut", () => {
  /** A router on the cloud whose hedge delay has learnt the cloud's latency (enough reads answered). */
  async function warmRouter() {
    const { router } = await stack.router();
    await modeReached(router, "supabase");
    for (let i = 0; i < 20; i++) await router.table("patients").get(stack.seed.patients.id as string);
    return router;
  }

  it("a read the cloud leaves hanging is answered by the clinic server, with what this PC wrote a moment before", async () => {
    const router = await warmRouter();
    // The daemon is cut off first: only the hedge's carry can bring this PC's writes to the clinic.
    await stack.daemonInternet.blackhole();
    const written = await router.table("appointments").insert(appointment("hedged: seconds before the cut"));
    const moved = await router
      .table("appointments")
      .update(written.id, { starts_at: "2025-05-06T10:00:00-06:00", ends_at: "2025-05-06T10:30:00-06:00" });
    expect(await stack.clinicSql`select 1 from appointments where id = ${written.id}`).toHaveLength(0);
    await stack.pcInternet.blackhole();

    const [read, listed] = await Promise.all([
      router.table("appointments").get(written.id),
      router.table("appointments").list({ where: { patient_id: stack.seed.patients.id as string } }),
    ]);
    expect(read?.version).toBe(moved.version);
    expect(listed.find((row) => row.id === written.id)?.version).toBe(moved.version);
    expect(router.counters().hedgesWon).toBeGreaterThanOrEqual(1);
    const [onClinic] = await stack.clinicSql`select version from appointments where id = ${written.id}`;
    expect(onClinic?.version).toBe(moved.version);
    await router.close();
  }, 30_000);

  it("a hedged read runs as the signed-in person: it finds nothing of a branch the doctor may not see", async () => {
    const other = consultation();
    await insertConsultation(stack.clinicSql, other);
    const router = await warmRouter();
    await stack.pcInternet.blackhole();
    const [foreign, mine] = await Promise.all([
      router.table("appointments").get(other.appointments.id),
      router.table("appointments").list({ where: { branch_id: other.branches.id } }),
    ]);
    expect(foreign).toBeNull();
    expect(mine).toEqual([]);
    expect(router.counters().hedgesWon).toBeGreaterThanOrEqual(1);
    await router.close();
  }, 30_000);

  it("stays off while the cloud answers: at most 1 % of reads are hedged", async () => {
    const router = await warmRouter();
    for (let i = 0; i < 300; i++) await router.table("patients").get(stack.seed.patients.id as string);
    expect(router.counters().hedgedReads).toBeLessThanOrEqual(3);
    await router.close();
  }, 60_000);
});

function appointment(reason: string) {
  return {
    id: randomUUID(),
    branch_id: stack.seed.branches.id as string,
    room_id: stack.seed.rooms.id as string,
    patient_id: stack.seed.patients.id as string,
    doctor_id: stack.seed.profiles.id as string,
    starts_at: "2025-05-06T09:00:00-06:00",
    ends_at: "2025-05-06T09:30:00-06:00",
    reason,
    type: "follow_up" as const,
  };
}

/**
 * A fresh router on the cloud under load while `during` plays a fault; then nothing may be lost
 * or doubled. Resolves with what the load saw, for the scenario's own checks.
 */
async function scenario(
  during: (live: LiveLoad, router: FailoverRouter) => Promise<void>,
): Promise<LoadReport> {
  const { router, local } = await stack.router(FAST);
  await modeReached(router, "supabase");
  const run = randomUUID();
  const report = await underLoad(router, stack.seed, run, (live) => during(live, router));
  await expectNothingLostOrDoubled(report, run, local);
  await router.close();
  return report;
}

describe("faults under load", () => {
  for (const cut of ["blackhole", "refuse"] as const) {
    it(`internet ${cut}: to the clinic server and back, nothing fails, nothing lost or doubled`, async () => {
      const report = await scenario(async (live, router) => {
        await until(() => live.writesIn("supabase") >= 3);
        await stack.internet(cut);
        await modeReached(router, "local");
        await until(() => live.writesIn("local") >= 5);
        const outage = live.idsIn("local");
        await stack.internet("pass");
        await modeReached(router, "supabase", 20_000);
        await outageWritesOnCloudAtFailback(outage);
        const back = live.writesIn("supabase");
        await until(() => live.writesIn("supabase") >= back + 3);
      });
      expect(report.modes).toEqual(["supabase", "local", "supabase"]);
    }, 60_000);
  }

  it("a slow link under the deadline does not fail over", async () => {
    const report = await scenario(async (live, router) => {
      await stack.pcInternet.latency(120);
      await until(
        () => live.writesIn("supabase") >= 8 && router.getStatus().tiers.cloud.lastProbeAt !== null,
      );
      const probes = router.counters();
      await until(() => live.writesIn("supabase") >= 16);
      expect(router.counters().switches).toBe(probes.switches);
    });
    expect(report.modes).toEqual(["supabase"]);
  }, 60_000);

  it("a flapping internet moves the PC once, not with every flap", async () => {
    const report = await scenario(async (live, router) => {
      // The flaps the router itself met: its cloud tier failing, then answering again.
      let failing = false;
      let recoveries = 0;
      const watch = router.status$.subscribe(({ tiers }) => {
        const failed = tiers.cloud.consecutiveFailures > 0;
        if (failing && !failed) recoveries++;
        failing = failed;
      });
      try {
        await Promise.all([stack.pcInternet.flap(700), stack.daemonInternet.flap(700)]);
        await until(
          () => recoveries >= 3 && live.writesIn("local") + live.writesIn("supabase") >= 10,
          20_000,
          "the router to meet three flaps",
        );
      } finally {
        watch.unsubscribe();
      }
      await stack.internet("pass");
      await modeReached(router, "supabase", 20_000);
    });
    expect(report.modes.length).toBeLessThanOrEqual(3);
  }, 60_000);

  it("the clinic server restarting during an outage: the PC's file serves, then the clinic, then the cloud", async () => {
    const report = await scenario(async (live, router) => {
      await stack.internet("blackhole");
      await modeReached(router, "local");
      await until(() => live.writesIn("local") >= 3);
      // A real restart: the PostgreSQL process stops (its connections die, its port closes) and
      // starts again on the same data directory and port.
      await clinicServer.stop();
      await modeReached(router, "offline");
      await until(() => live.writesIn("offline") >= 3);
      clinicServer = await startPostgres({
        dataDir: clinicDir,
        port: clinicServer.port,
        password: clinicServer.password,
      });
      await modeReached(router, "local", 20_000);
      const back = live.writesIn("local");
      await until(() => live.writesIn("local") >= back + 3);
      await stack.internet("pass");
      await modeReached(router, "supabase", 20_000);
    });
    expect(report.modes).toEqual([
      "supabase",
      "local",
      "offline",
      "local",
      "supabase",
    ] satisfies ConnectionMode[]);
  }, 60_000);

  it("both servers gone: the PC's SQLite file serves, and the PC returns to the cloud", async () => {
    const report = await scenario(async (live, router) => {
      await until(() => live.writesIn("supabase") >= 3);
      await Promise.all([stack.internet("blackhole"), stack.lan.blackhole()]);
      await modeReached(router, "offline");
      await until(() => live.writesIn("offline") >= 5);
      await Promise.all([stack.internet("pass"), stack.lan.pass()]);
      await modeReached(router, "supabase", 20_000);
    });
    // Both cut at once: the router may pass through the clinic server on the way down or up.
    expect(report.modes[0]).toBe("supabase");
    expect(report.modes).toContain("offline");
    expect(report.modes.at(-1)).toBe("supabase");
  }, 60_000);
});
