/**
 * Failover router benchmark, on the real tiers of test/router/pc-stack.ts (local Supabase with a
 * doctor's session, clinic PostgreSQL with a centrovision_app login acting as the same doctor (a
 * clinic session), SQLite file, sync engine),
 * with the router's DEFAULT numbers. Distributions and ratios measured in this one run.
 *
 * 1. Cut to first call served by the clinic server, the internet cut at a random moment of the
 *    probe cycle. A busy PC reads back to back on four screens (time until a read first returns
 *    while the router is on the clinic); an idle one only probes (time until the router serves
 *    from the clinic). CV_BENCH_CUTS cuts (default 20) each, for blackhole (target ≤ 3 s) and
 *    refuse (≤ 1.5 s).
 * 1b. The longest read in flight across a blackhole cut on the busy PC, with hedged reads and,
 *    alternated cut by cut, with them off (target ≤ 1 s at p95).
 * 2. Failback: internet back to the PC on the cloud again (rise + hold-down + the clinic's
 *    pending changes pushed), CV_BENCH_FAILBACKS times (default 3).
 * 3. Router overhead per call: the same read through the router and straight through the cloud
 *    adapter, interleaved, 400 each; p50 ratio (target ≤ 1.05); and the share of the router's
 *    reads it hedged while nothing failed (target ≤ 1 %).
 * 4. What TLS on the clinic LAN costs a cut: the busy PC's cuts again, alternated one by one
 *    between this stack and one whose clinic server the PC reaches over TLS (verify-full against
 *    the clinic's CA, as setup-server.sh sets it up); p50 and p95 ratios.
 *
 *   npm run bench   (in packages/offline; runs the outbox bench too)
 *   node --conditions=@centrovision/source --import tsx bench/router.bench.ts
 */
import { longOrShort, reportFigure, SUPABASE_SUPERUSER, startPostgres } from "@centrovision/testkit";
import { modeReached, type PcStack, startPcStack } from "../test/router/pc-stack.js";

const CUTS = Number(
  process.env.CV_BENCH_CUTS ?? longOrShort(20, 10, "router.bench.ts: 10 cuts per kind instead of 20"),
);
const FAILBACKS = Number(process.env.CV_BENCH_FAILBACKS ?? 3);
const OVERHEAD_CALLS = 400;
/** Screens of a busy PC reading at once (agenda, patient file, waiting room, …). */
const READERS = 4;

const log = (line: string) => process.stdout.write(`${line}\n`);
const ms = (value: number) => `${Math.round(value)} ms`;
const percentile = (sorted: readonly number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0;

/** Prints the distribution of `samples` (ms) and returns its p95. */
function describe(label: string, samples: readonly number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  const p95 = percentile(sorted, 0.95);
  log(
    `${label.padEnd(36)} n=${sorted.length}  min ${ms(sorted[0] ?? 0)}  p50 ${ms(percentile(sorted, 0.5))}  ` +
      `p95 ${ms(p95)}  max ${ms(sorted.at(-1) ?? 0)}`,
  );
  return p95;
}

/** What one cut measured: when the router first served from the clinic, and the longest read in flight. */
interface Cut {
  readonly toClinicMs: number;
  /** Busy PC only: the longest any read took that was in flight at the cut or began before the switch. */
  readonly longestReadMs: number;
}

/**
 * One cut on a fresh router (fresh health state, as a PC that has been on the cloud a while).
 * Busy: READERS screens read back to back, and the PC's own failed calls count as failed probes.
 * Idle: only the probes notice; measured until the router serves from the clinic (the mode
 * switches). `hedge: false` turns hedged reads off, for the same-run reference.
 */
async function cutToClinic(
  stack: PcStack,
  cut: "blackhole" | "refuse",
  busy: boolean,
  hedge = true,
): Promise<Cut> {
  const { router } = await stack.router({ hedgeReads: hedge });
  try {
    await modeReached(router, "supabase", 30_000);
    if (!busy) {
      await new Promise((resolve) => setTimeout(resolve, 500 + Math.random() * 1_000));
      const cutAt = performance.now();
      await stack.internet(cut);
      await modeReached(router, "local", 30_000);
      return { toClinicMs: performance.now() - cutAt, longestReadMs: Number.NaN };
    }
    let stop = false;
    let servedByClinicAt = 0;
    let cutAt = 0;
    let longestReadMs = 0;
    const reader = async () => {
      while (!stop) {
        const started = performance.now();
        await router.table("patients").get(stack.seed.patients.id as string);
        const ended = performance.now();
        if (cutAt > 0 && ended >= cutAt && (servedByClinicAt === 0 || started <= servedByClinicAt)) {
          longestReadMs = Math.max(longestReadMs, ended - started);
        }
        if (cutAt > 0 && servedByClinicAt === 0 && router.getStatus().mode === "local") {
          servedByClinicAt = ended;
        }
      }
    };
    const readers = Array.from({ length: READERS }, reader);
    // Anywhere in the 1 s probe cycle, so the distribution covers the worst case too.
    await new Promise((resolve) => setTimeout(resolve, 500 + Math.random() * 1_000));
    cutAt = performance.now();
    await stack.internet(cut);
    while (servedByClinicAt === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    stop = true;
    await Promise.all(readers);
    return { toClinicMs: servedByClinicAt - cutAt, longestReadMs };
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
    const p50 = (samples: number[]) =>
      percentile(
        [...samples].sort((a, b) => a - b),
        0.5,
      );
    reportFigure({
      figure: "router overhead per read, p50",
      unit: "ms",
      measured: p50(routed),
      reference: { label: "cloud adapter straight", value: p50(straight) },
      ratio: p50(routed) / p50(straight),
      goal: { of: "ratio", atMost: 1.05 },
    });
    reportFigure({
      figure: "hedged reads while nothing fails",
      unit: "%",
      measured: (100 * router.counters().hedgedReads) / (50 + OVERHEAD_CALLS),
      goal: { of: "measured", atMost: 1 },
    });
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
      const label = `${busy ? "busy" : "idle"} PC, ${cut} → on clinic`;
      const cuts: Cut[] = [];
      for (let i = 0; i < CUTS; i++) cuts.push(await cutToClinic(stack, cut, busy));
      reportFigure({
        figure: `${label}, p95`,
        unit: "ms",
        measured: describe(
          label,
          cuts.map((c) => c.toClinicMs),
        ),
        goal: { of: "measured", atMost: cut === "blackhole" ? 3_000 : 1_500 },
      });
    }
  }
  await longestReadAtCut(stack);
  const failbacks: number[] = [];
  for (let i = 0; i < FAILBACKS; i++) failbacks.push(await failback(stack));
  reportFigure({
    figure: "internet back → on the cloud again, p95",
    unit: "ms",
    measured: describe("internet back → on the cloud again", failbacks),
  });
  await overhead(stack);
  await tlsCost(stack);
} finally {
  await stack.close();
  await server.stop();
}

/**
 * The longest read in flight across a blackhole cut (a busy PC, READERS screens), with hedged
 * reads and, alternated cut by cut as the same-run reference, without.
 */
async function longestReadAtCut(stack: PcStack): Promise<void> {
  const hedged: number[] = [];
  const unhedged: number[] = [];
  for (let i = 0; i < CUTS; i++) {
    hedged.push((await cutToClinic(stack, "blackhole", true, true)).longestReadMs);
    unhedged.push((await cutToClinic(stack, "blackhole", true, false)).longestReadMs);
  }
  const withHedges = describe("longest read in flight, hedged", hedged);
  const without = describe("longest read in flight, not hedged", unhedged);
  reportFigure({
    figure: "longest read in flight across a blackhole cut, p95",
    unit: "ms",
    measured: withHedges,
    reference: { label: "hedged reads off", value: without },
    ratio: withHedges / without,
    goal: { of: "measured", atMost: 1_000 },
  });
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
      const samples = { plain: [] as Cut[], tls: [] as Cut[] };
      for (let i = 0; i < CUTS; i++) {
        samples.plain.push(await cutToClinic(plain, cut, true));
        samples.tls.push(await cutToClinic(encrypted, cut, true));
      }
      const plainP95 = describe(
        `busy PC, ${cut}, plain`,
        samples.plain.map((c) => c.toClinicMs),
      );
      const tlsP95 = describe(
        `busy PC, ${cut}, TLS`,
        samples.tls.map((c) => c.toClinicMs),
      );
      reportFigure({
        figure: `busy PC, ${cut} → on clinic over TLS, p95`,
        unit: "ms",
        measured: tlsP95,
        reference: { label: "plain", value: plainP95 },
        ratio: tlsP95 / Math.max(1, plainP95),
      });
    }
  } finally {
    await encrypted.close();
    await Promise.all([cloudServer.stop(), clinicServer.stop()]);
  }
}
