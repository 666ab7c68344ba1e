/**
 * Failover router benchmark, on the real tiers of test/router/pc-stack.ts (local Supabase with a
 * doctor's session, clinic PostgreSQL with a centrovision_app login acting as the same doctor (a
 * clinic session), SQLite file, sync engine),
 * with the router's DEFAULT numbers. Distributions and ratios measured in this one run.
 *
 * 1. Cut to first call served by the clinic server, the internet cut at a random moment of the
 *    probe cycle. A busy PC reads back to back (time until a read first returns from the clinic);
 *    an idle one only probes (time until the router serves from the clinic). CV_BENCH_CUTS cuts
 *    (default 20) each, for blackhole (target ≤ 3 s) and refuse (≤ 1.5 s).
 * 2. Failback: internet back to the PC on the cloud again (rise + hold-down + the clinic's
 *    pending changes pushed), CV_BENCH_FAILBACKS times (default 3).
 * 3. Router overhead per call: the same read through the router and straight through the cloud
 *    adapter, interleaved, 400 each; p50 ratio (target ≤ 1.05).
 * 4. What TLS on the clinic LAN costs a cut: the busy PC's cuts again, alternated one by one
 *    between this stack and one whose clinic server the PC reaches over TLS (verify-full against
 *    the clinic's CA, as setup-server.sh sets it up); p50 and p95 ratios.
 *
 *   npm run bench   (in packages/sync-engine; runs the sync bench first)
 *   node --conditions=@centrovision/source --import tsx bench/router.bench.ts
 */
import { SUPABASE_SUPERUSER, startPostgres } from "@centrovision/testkit";
import { modeReached, type PcStack, startPcStack } from "../test/router/pc-stack.js";

const CUTS = Number(process.env.CV_BENCH_CUTS ?? 20);
const FAILBACKS = Number(process.env.CV_BENCH_FAILBACKS ?? 3);
const OVERHEAD_CALLS = 400;

const log = (line: string) => process.stdout.write(`${line}\n`);
const ms = (value: number) => `${Math.round(value)} ms`;
const percentile = (sorted: readonly number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0;

function describe(label: string, samples: readonly number[], target?: number): void {
  const sorted = [...samples].sort((a, b) => a - b);
  const p95 = percentile(sorted, 0.95);
  const verdict =
    target === undefined ? "" : `  target ≤ ${ms(target)}: ${p95 <= target ? "met" : "MISSED"} at p95`;
  log(
    `${label.padEnd(36)} n=${sorted.length}  min ${ms(sorted[0] ?? 0)}  p50 ${ms(percentile(sorted, 0.5))}  ` +
      `p95 ${ms(p95)}  max ${ms(sorted.at(-1) ?? 0)}${verdict}`,
  );
}

/**
 * One cut on a fresh router (fresh health state, as a PC that has been on the cloud a while).
 * Busy: the PC reads back to back, and its own failed calls count as failed probes. Idle: only
 * the probes notice; measured until the router serves from the clinic (the mode switches).
 */
async function cutToClinic(stack: PcStack, cut: "blackhole" | "refuse", busy: boolean): Promise<number> {
  const { router } = await stack.router();
  try {
    await modeReached(router, "supabase", 30_000);
    if (!busy) {
      await new Promise((resolve) => setTimeout(resolve, 500 + Math.random() * 1_000));
      const cutAt = performance.now();
      await stack.internet(cut);
      await modeReached(router, "local", 30_000);
      return performance.now() - cutAt;
    }
    let stop = false;
    let servedByClinicAt = 0;
    let cutAt = 0;
    const reader = (async () => {
      while (!stop) {
        await router.table("patients").get(stack.seed.patients.id as string);
        if (cutAt > 0 && servedByClinicAt === 0 && router.getStatus().mode === "local") {
          servedByClinicAt = performance.now();
        }
      }
    })();
    // Anywhere in the 1 s probe cycle, so the distribution covers the worst case too.
    await new Promise((resolve) => setTimeout(resolve, 500 + Math.random() * 1_000));
    cutAt = performance.now();
    await stack.internet(cut);
    while (servedByClinicAt === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    stop = true;
    await reader;
    return servedByClinicAt - cutAt;
  } finally {
    await stack.internet("pass");
    await router.close();
  }
}

async function failback(stack: PcStack): Promise<number> {
  const { router } = await stack.router();
  try {
    await modeReached(router, "supabase", 30_000);
    await stack.internet("blackhole");
    await modeReached(router, "local", 10_000);
    await router.table("patients").update(stack.seed.patients.id as string, { phone: "33 3615 1111" });
    const back = performance.now();
    await stack.internet("pass");
    await modeReached(router, "supabase", 120_000);
    return performance.now() - back;
  } finally {
    await stack.internet("pass");
    await router.close();
  }
}

async function overhead(stack: PcStack): Promise<void> {
  const { router } = await stack.router();
  const direct = stack.cloudSource();
  try {
    await modeReached(router, "supabase", 30_000);
    const id = stack.seed.patients.id as string;
    for (let i = 0; i < 50; i++) {
      await router.table("patients").get(id);
      await direct.table("patients").get(id);
    }
    const routed: number[] = [];
    const straight: number[] = [];
    for (let i = 0; i < OVERHEAD_CALLS; i++) {
      let start = performance.now();
      await direct.table("patients").get(id);
      straight.push(performance.now() - start);
      start = performance.now();
      await router.table("patients").get(id);
      routed.push(performance.now() - start);
    }
    describe("cloud adapter get(), direct", straight);
    describe("cloud adapter get(), via router", routed);
    const ratio =
      percentile(
        [...routed].sort((a, b) => a - b),
        0.5,
      ) /
      percentile(
        [...straight].sort((a, b) => a - b),
        0.5,
      );
    log(`router overhead at p50: ${ratio.toFixed(3)}× (target ≤ 1.05×: ${ratio <= 1.05 ? "met" : "MISSED"})`);
  } finally {
    await router.close();
    await direct.close();
  }
}

const server = await startPostgres({ superuser: SUPABASE_SUPERUSER });
const stack = await startPcStack(server);
try {
  log(`failover router bench: default router config, ${CUTS} cuts per kind, ${FAILBACKS} failbacks`);
  for (const busy of [true, false]) {
    for (const cut of ["blackhole", "refuse"] as const) {
      const samples: number[] = [];
      for (let i = 0; i < CUTS; i++) samples.push(await cutToClinic(stack, cut, busy));
      const label = `${busy ? "busy" : "idle"} PC, ${cut} → on clinic`;
      describe(label, samples, cut === "blackhole" ? 3_000 : 1_500);
    }
  }
  const failbacks: number[] = [];
  for (let i = 0; i < FAILBACKS; i++) failbacks.push(await failback(stack));
  describe("internet back → on the cloud again", failbacks);
  await overhead(stack);
  await tlsCost(stack);
} finally {
  await stack.close();
  await server.stop();
}

/** Section 4: the same busy cuts with the clinic link plain and over TLS, alternated. */
async function tlsCost(plain: PcStack): Promise<void> {
  const [cloudServer, clinicServer] = await Promise.all([
    startPostgres({ superuser: SUPABASE_SUPERUSER }),
    startPostgres({ tls: true }),
  ]);
  const encrypted = await startPcStack(cloudServer, { clinicServer });
  try {
    log("");
    log(`the busy PC's cuts with its clinic link plain and over TLS (verify-full), alternated, ${CUTS} each`);
    for (const cut of ["blackhole", "refuse"] as const) {
      const samples = { plain: [] as number[], tls: [] as number[] };
      for (let i = 0; i < CUTS; i++) {
        samples.plain.push(await cutToClinic(plain, cut, true));
        samples.tls.push(await cutToClinic(encrypted, cut, true));
      }
      describe(`busy PC, ${cut}, plain`, samples.plain);
      describe(`busy PC, ${cut}, TLS`, samples.tls);
      const [p, t] = [samples.plain, samples.tls].map((xs) => [...xs].sort((a, b) => a - b));
      const ratio = (q: number) => percentile(t as number[], q) / Math.max(1, percentile(p as number[], q));
      log(`  TLS / plain: p50 ${ratio(0.5).toFixed(2)}×, p95 ${ratio(0.95).toFixed(2)}×`);
    }
  } finally {
    await encrypted.close();
    await Promise.all([cloudServer.stop(), clinicServer.stop()]);
  }
}
