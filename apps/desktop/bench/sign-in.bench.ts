import { randomBytes, scrypt } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { promisify } from "node:util";
import type { CvError } from "@centrovision/core";
import { reportFigure } from "@centrovision/testkit";
import { createClient } from "@supabase/supabase-js";
import postgres from "postgres";
import WebSocket from "ws";
import { type ClinicDoor, createClinicDoor } from "../src/backend/clinic-door.js";
import { createPcSession, type PcSession, type SignInMethod } from "../src/backend/session.js";
import { onDatabase } from "../src/demo/demo-stack.js";
import { type ClinicStack, startClinicStack } from "../test/clinic-stack.js";

/**
 * Sign-in time online and offline, as the desktop signs in (`createPcSession` with a `ClinicDoor`,
 * the desktop's default deadlines), each against a physical floor measured in the same run:
 * 1. online: until `signIn` resolves (password grant + profile name + this PC's scrypt verifier),
 *    and until the clinic session is held (`state$` says `clinicUsable`) and the clinic's bcrypt
 *    verifier is enrolled (the door's `enroll` resolved; both in the background, observed rather than
 *    polled), against one bare supabase-js password grant through the same link;
 * 2. at the clinic server, the internet link refused: against one bcrypt (cost 10) round trip there;
 * 3. on this PC alone, internet and LAN links refused: against one scrypt of the verifier's cost.
 * Floor and sign-in alternate run by run, so a noisy neighbour slows both. A fresh PcSession per
 * run (signed out and closed after it, which awaits its background work and sign-outs), so no run
 * overlaps the previous one's tail. The local Supabase's Auth is the testkit's, in this process
 * (bcryptjs, cost 10): the password grant floor includes that.
 */
const RUNS = 20;
const WARMUPS = 2;

const NURSE = {
  email: "enfermera@clinica.example",
  password: "una contraseña larga",
  name: "Enfermera Clínica",
};
/** The device verifier's cost (device-signin.ts). */
const SCRYPT = { N: 2 ** 15, r: 8, p: 1 } as const;
const deriveScrypt = promisify(scrypt) as (
  password: string,
  salt: Buffer,
  length: number,
  options: { N: number; r: number; p: number; maxmem: number },
) => Promise<Buffer>;

type Samples = number[];

function stats(samples: Samples): { median: number; p95: number } {
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = sorted.length / 2;
  const median =
    sorted.length % 2 === 0
      ? ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2
      : (sorted[Math.floor(mid)] ?? 0);
  const p95 = sorted[Math.min(sorted.length - 1, Math.ceil(0.95 * sorted.length) - 1)] ?? 0;
  return { median, p95 };
}

async function timed(work: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await work();
  return performance.now() - start;
}

/** `promise`, or a rejection after `ms` (so a broken run fails the bench instead of hanging it). */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`[bench] no ${what} within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs `WARMUPS` + `RUNS` rounds of `round`, keeping the samples of the last `RUNS`. */
async function rounds(round: (keep: boolean) => Promise<void>): Promise<void> {
  for (let i = 0; i < WARMUPS + RUNS; i += 1) await round(i >= WARMUPS);
}

let stack: ClinicStack | undefined;
let held: postgres.Sql | undefined;
const loud = console.error;
let muted = 0;
const dir = await mkdtemp(join(tmpdir(), "cv-bench-sign-in-"));
try {
  stack = await startClinicStack(NURSE, "bench_sign_in");
  const { cloud, clinicDb, internet, lan, cloudUrl, personId: nurseId } = stack;
  const login = new URL(stack.pcLoginUrl());
  const sqlitePath = join(dir, "local", "clinic.cvdb");
  const sqliteKey = new Uint8Array(randomBytes(32));
  const errors: string[] = [];

  /** A PC session as the desktop builds one (default deadlines); `enrolled` fires when the clinic's verifier is made. */
  const open = (enrolled?: () => void): Promise<PcSession> => {
    const door = createClinicDoor({ url: login.href });
    const instrumented: ClinicDoor = {
      ...door,
      enroll: async (session, password) => {
        await door.enroll(session, password);
        enrolled?.();
      },
    };
    return createPcSession({
      url: cloudUrl,
      anonKey: cloud.anonKey,
      sqlitePath,
      sqliteKey,
      clinic: instrumented,
      onError: (what: string, error: CvError) => errors.push(`${what}: ${error.code}`),
    });
  };

  const expectMethod = (method: SignInMethod, state: Awaited<ReturnType<PcSession["signIn"]>>) => {
    if (!state.signedIn || state.method !== method) {
      throw new Error(`[bench] expected a '${method}' sign-in, got ${JSON.stringify(state)}`);
    }
  };

  // 1. Online, with its floor: one bare password grant through the same link.
  const grant: Samples = [];
  const online: Samples = [];
  const clinicHeld: Samples = [];
  const clinicEnrolled: Samples = [];
  const bare = createClient(cloudUrl, cloud.anonKey, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    realtime: { transport: WebSocket as never },
  });
  const enrolledAt = () =>
    onDatabase(clinicDb, async (sql) => {
      const [row] = await sql<
        { at: string }[]
      >`select enrolled_at::text as at from cv_auth.verifiers where user_id = ${nurseId}`;
      return row?.at;
    });
  await rounds(async (keep) => {
    const floor = await timed(async () => {
      const { error } = await bare.auth.signInWithPassword({ email: NURSE.email, password: NURSE.password });
      if (error !== null) throw error;
    });
    await bare.auth.signOut({ scope: "local" });

    const before = await enrolledAt();
    let enrolled: () => void = () => {};
    const enrolment = new Promise<number>((resolve) => {
      enrolled = () => resolve(performance.now());
    });
    const session = await open(() => enrolled());
    let heldAt: number | undefined;
    const heldOnce = new Promise<number>((resolve) => {
      session.state$.subscribe((state) => {
        if (heldAt === undefined && state.signedIn && state.clinicUsable) {
          heldAt = performance.now();
          resolve(heldAt);
        }
      });
    });
    const start = performance.now();
    expectMethod("online", await session.signIn(NURSE.email, NURSE.password));
    const signedIn = performance.now() - start;
    const heldMs = (await within(heldOnce, 10_000, "clinic session")) - start;
    const enrolledMs = (await within(enrolment, 10_000, "clinic verifier")) - start;
    const after = await enrolledAt();
    if (after === undefined || after === before)
      throw new Error("[bench] the clinic's verifier was not renewed");
    await session.signOut();
    await session.close();
    if (keep) {
      grant.push(floor);
      online.push(signedIn);
      clinicHeld.push(heldMs);
      clinicEnrolled.push(enrolledMs);
    }
  });
  const onlineErrors = errors.splice(0);
  if (onlineErrors.length > 0)
    throw new Error(`[bench] online sign-ins reported: ${onlineErrors.join("; ")}`);

  // 2. At the clinic server (the cloud unreachable), with its floors on one held connection there.
  await internet.refuse();
  // auth-js writes every failed fetch to console.error (a stack trace per offline sign-in).
  console.error = (...args: unknown[]) => {
    if (args[0] instanceof TypeError && args[0].message === "fetch failed") muted += 1;
    else loud(...args);
  };
  held = postgres(lan.url(clinicDb), { max: 1, onnotice: () => {} });
  const bcrypt: Samples = [];
  const roundTrip: Samples = [];
  const connectRoundTrip: Samples = [];
  const atClinic: Samples = [];
  await rounds(async (keep) => {
    const sql = held as postgres.Sql;
    const crypt = await timed(() => sql`select cv_crypto.crypt('x', cv_crypto.gen_salt('bf', 10))`);
    const one = await timed(() => sql`select 1`);
    // What each ClinicDoor call pays first: a new connection as the PC login (SCRAM), then a query.
    const fresh = postgres(login.href, { max: 1, fetch_types: false, onnotice: () => {} });
    const connected = await timed(() => fresh`select 1`);
    await fresh.end({ timeout: 0 });

    const session = await open();
    const signedIn = await timed(async () =>
      expectMethod("clinic", await session.signIn(NURSE.email, NURSE.password)),
    );
    await session.signOut();
    await session.close();
    if (keep) {
      bcrypt.push(crypt);
      roundTrip.push(one);
      connectRoundTrip.push(connected);
      atClinic.push(signedIn);
    }
  });
  const clinicErrors = errors.splice(0);
  if (clinicErrors.length > 0)
    throw new Error(`[bench] clinic sign-ins reported: ${clinicErrors.join("; ")}`);

  // 3. On this PC alone, with its floor: one scrypt of the device verifier's cost.
  await lan.refuse();
  const scryptFloor: Samples = [];
  const onDevice: Samples = [];
  await rounds(async (keep) => {
    const floor = await timed(() =>
      deriveScrypt(NURSE.password, randomBytes(16), 32, { ...SCRYPT, maxmem: 256 * SCRYPT.N * SCRYPT.r }),
    );
    const session = await open();
    const signedIn = await timed(async () =>
      expectMethod("device", await session.signIn(NURSE.email, NURSE.password)),
    );
    await session.signOut();
    await session.close();
    if (keep) {
      scryptFloor.push(floor);
      onDevice.push(signedIn);
    }
  });
  // Each device sign-in first finds the clinic server refused; that is the one error expected.
  const deviceErrors = errors.splice(0).filter((line) => !line.startsWith("signing in on the clinic server"));
  if (deviceErrors.length > 0)
    throw new Error(`[bench] device sign-ins reported: ${deviceErrors.join("; ")}`);

  const fixed = (value: number) => value.toFixed(1).padStart(7);
  const cpu = cpus();
  console.log(
    `sign-in, ${RUNS} runs after ${WARMUPS} warm-ups each, floor and sign-in alternating (ms; ${cpu.length} × ${cpu[0]?.model.trim() ?? "cpu"})`,
  );
  const floors: [string, Samples][] = [
    ["password grant (bare supabase-js, same link)", grant],
    ["bcrypt cost 10 on the clinic (held connection)", bcrypt],
    ["SELECT 1 on the clinic (held connection)", roundTrip],
    ["new connection as the PC login + SELECT 1", connectRoundTrip],
    ["scrypt N=2^15 r=8 p=1 (this PC)", scryptFloor],
  ];
  console.log(`${"floor".padEnd(48)}${"median".padStart(7)} ${"p95".padStart(7)}`);
  for (const [name, samples] of floors) {
    const s = stats(samples);
    console.log(`${name.padEnd(48)}${fixed(s.median)} ${fixed(s.p95)}`);
  }
  const rows: [string, Samples, string, Samples][] = [
    ["online: signIn resolves", online, "a bare password grant", grant],
    ["online: clinic session held", clinicHeld, "a bare password grant", grant],
    ["online: clinic verifier enrolled", clinicEnrolled, "a bare password grant", grant],
    ["clinic (internet refused)", atClinic, "bcrypt cost 10 there", bcrypt],
    ["device (internet and LAN refused)", onDevice, "scrypt of the verifier", scryptFloor],
  ];
  for (const [name, samples, floorName, floor] of rows) {
    const s = stats(samples);
    const f = stats(floor);
    reportFigure({
      figure: `${name}, median`,
      unit: "ms",
      measured: s.median,
      reference: { label: floorName, value: f.median },
      ratio: s.median / f.median,
    });
    console.log(
      `  p95 ${s.p95.toFixed(1)} ms; median ${(s.median - f.median).toFixed(1)} ms above the floor`,
    );
  }
  console.log(`auth-js printed ${muted} failed fetches while the internet was refused (muted here).`);
} finally {
  console.error = loud;
  await held?.end({ timeout: 1 });
  await stack?.stop();
  await rm(dir, { recursive: true, force: true });
}
