import { existsSync } from "node:fs";
import { startPostgres } from "@centrovision/testkit";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CpuUse, cpuMeter, describeCpu, postmasterPid } from "../bench/cpu-time.js";

// The bench's CPU figures read /proc: Linux only (elsewhere the bench prints none).
describe.skipIf(!existsSync("/proc/self/stat"))("the bench's CPU meter", () => {
  // A server of its own: nothing else runs on it while it is measured.
  let server: Awaited<ReturnType<typeof startPostgres>>;
  beforeAll(async () => {
    server = await startPostgres();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("counts a server's backend that exited before the measurement ended, and this process", async () => {
    const root = postmasterPid(server.dataDir);
    expect(root).toBeGreaterThan(0);
    const meter = cpuMeter({ server: root }, "this process");
    const busy = postgres(server.url, { max: 1, onnotice: () => {} });
    await busy`select count(*) from generate_series(1, 5000000)`;
    // Its backend exits: its time moves to the postmaster's count once the postmaster reaps it.
    await busy.end();
    let use: CpuUse | undefined;
    for (let wait = 0; wait < 40; wait++) {
      use = meter.stop();
      if ((use?.seconds.server ?? 0) >= 0.1) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(use?.seconds.server).toBeGreaterThanOrEqual(0.1);
    expect(use?.seconds["this process"]).toBeGreaterThan(0);
    const used = use as CpuUse;
    expect(used.totalSeconds).toBeCloseTo((used.seconds.server ?? 0) + (used.seconds["this process"] ?? 0));
    expect(used.floorSeconds).toBeCloseTo(used.totalSeconds / used.cores);
    expect(describeCpu(used)).toMatch(/^CPU: server \d+\.\d\d s, this process \d+\.\d\d s: /);
  });

  it("adds what is measured elsewhere, and has no server for a data directory without one", () => {
    expect(postmasterPid("/nonexistent")).toBeUndefined();
    const use = cpuMeter({ gone: postmasterPid("/nonexistent") }, "this process").stop({ child: 1.5 });
    expect(use?.seconds).not.toHaveProperty("gone");
    expect(use?.seconds.child).toBe(1.5);
  });
});
