import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { insertConsultation } from "@centrovision/testkit/nodes";
import { afterAll, beforeAll, expect, it } from "vitest";
import { openTier, type PcFiles, pcFiles, todayClinic, useClinicServer } from "./support.js";

const child = fileURLToPath(new URL("./offline-child.ts", import.meta.url));
const packageDir = fileURLToPath(new URL("../../", import.meta.url));
const clinic = useClinicServer("offline_kill");

let files: PcFiles;

beforeAll(async () => {
  files = await pcFiles();
});
afterAll(async () => {
  await files?.remove();
});

async function countPending(): Promise<number> {
  const tier = await openTier(files, { branchId: "00000000-0000-4000-8000-000000000000" });
  try {
    return await tier.pendingCount();
  } finally {
    await tier.close();
  }
}

/**
 * Runs the child in `mode` and SIGKILLs it `delayMs` after its `killAfter`-th line (`ack …` when
 * writing, `batch …` when draining); resolves once it is reaped.
 */
function runUntilKilled(mode: "write" | "drain", branchId: string, killAfter: number, delayMs: number) {
  const args = [mode, files.path, files.key.toString("hex"), branchId, clinic.url];
  const proc = spawn(
    process.execPath,
    ["--conditions=@centrovision/source", "--import", "tsx", child, ...args],
    {
      cwd: packageDir,
      // The signed-in person's session, kept off the command line.
      env: { ...process.env, CV_CLINIC_SESSION: clinic.person.token },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  const acked: string[] = [];
  let lines = 0;
  let stderr = "";
  proc.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  createInterface({ input: proc.stdout }).on("line", (line) => {
    if (line.startsWith("ack ")) acked.push(line.slice(4));
    if (++lines === killAfter) setTimeout(() => proc.kill("SIGKILL"), delayMs);
  });
  return new Promise<{ acked: string[]; signal: NodeJS.Signals | null; stderr: string }>(
    (resolve, reject) => {
      proc.on("error", reject);
      proc.on("close", (_code, signal) => resolve({ acked, signal, stderr }));
    },
  );
}

it("offline writes acknowledged before a kill -9 all reach the clinic server once drained", async () => {
  const graph = todayClinic();
  await insertConsultation(clinic.node.sql, graph);
  await clinic.person.admit(graph.branches.id);
  const setup = await openTier(files, { branchId: graph.branches.id });
  await setup.refresh(clinic.source);
  await setup.close();

  const acked: string[] = [];
  for (const [round, kill] of [
    { killAfter: 120, delayMs: 0 },
    { killAfter: 80, delayMs: 7 },
  ].entries()) {
    const run = await runUntilKilled("write", graph.branches.id, kill.killAfter, kill.delayMs);
    expect(run.signal, run.stderr).toBe("SIGKILL");
    acked.push(...run.acked);
    const tier = await openTier(files, { branchId: graph.branches.id });
    try {
      const pending = new Set((await tier.pending()).map((entry) => entry.id));
      expect(
        acked.filter((id) => !pending.has(id)),
        `round ${round}: acknowledged writes lost`,
      ).toEqual([]);
      // At most the one write in flight per kill is there without an acknowledgement.
      expect(pending.size - acked.length).toBeLessThanOrEqual(round + 1);
    } finally {
      await tier.close();
    }
  }

  // A drain killed part-way (10 entries per server batch): what committed left the outbox or is
  // resent and skipped; nothing is lost or applied twice.
  const before = await countPending();
  const drainRun = await runUntilKilled("drain", graph.branches.id, 5, 2);
  expect(drainRun.signal, drainRun.stderr).toBe("SIGKILL");
  const left = await countPending();
  expect(left).toBeLessThanOrEqual(before - 50);
  expect(left).toBeGreaterThan(0);

  const tier = await openTier(files, { branchId: graph.branches.id });
  try {
    const report = await tier.drain(clinic.applier);
    expect(report).toMatchObject({ sent: left, remaining: 0, deadLettered: 0 });
    const [stored] = await clinic.node.sql<{ n: number }[]>`
      select count(*)::int as n from patients where id in ${clinic.node.sql(acked)}`;
    expect(stored?.n).toBe(acked.length);
    const [logged] = await clinic.node.sql<{ n: number }[]>`
      select count(*)::int as n from cv_sync.change_log where row_id in ${clinic.node.sql(acked)}`;
    expect(logged?.n).toBe(acked.length);
    expect(await tier.pendingCount()).toBe(0);
  } finally {
    await tier.close();
  }
}, 120_000);
