import { randomUUID } from "node:crypto";
import type { DataSource } from "@centrovision/core";
import { createLink, type Link } from "@centrovision/testkit";
import { createFixtures, type Timed, timed } from "@centrovision/testkit/contract";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createSupabaseSource, type SupabaseConfigInput } from "../src/index.js";
import { captivePortal, databaseLost, type FakeServer, startFakeServer } from "./support/fake-servers.js";
import { type LocalCloud, startLocalCloud } from "./support/local-cloud.js";

// A deadline must hold to within SLACK_MS (timer and event-loop jitter on a loaded 2-core box).
const DEADLINE_MS = 800;
const SLACK_MS = 700;
const FAST_MS = 1_500;
const fixtures = createFixtures();
let cloud: LocalCloud;
let link: Link;
let source: DataSource;
let branchId: string;

beforeAll(async () => {
  cloud = await startLocalCloud();
  branchId = randomUUID();
  await cloud.sql`insert into branches (id, code, name, address) values (${branchId}, 'FAULTS', 'Centro', 'Roma 1')`;
});

afterAll(async () => {
  await cloud?.stop();
});

beforeEach(async () => {
  link = await createLink({ target: new URL(cloud.stack.url).host });
});

afterEach(async () => {
  await link.close();
  await source?.close();
});

function open(config: Partial<SupabaseConfigInput> = {}): DataSource {
  source = createSupabaseSource({
    url: link.url(cloud.stack.url),
    key: cloud.stack.serviceRoleKey,
    ...config,
  });
  return source;
}

/** One call of each kind the router relies on, against a source whose backend is cut. */
const calls = (s: DataSource): Record<"get" | "list" | "upsert" | "probe", () => Promise<unknown>> => ({
  get: () => s.table("branches").get(branchId),
  list: () => s.table("patients").list({ where: { branch_id: branchId }, limit: 20 }),
  upsert: () => s.table("patients").upsert(fixtures.patient(branchId, { document_id: null })),
  probe: () => s.probe(),
});

async function each(s: DataSource): Promise<[string, Timed<unknown>][]> {
  const out: [string, Timed<unknown>][] = [];
  for (const [name, call] of Object.entries(calls(s))) out.push([name, await timed(call())]);
  return out;
}

const report = (what: string, attempts: [string, Timed<unknown>][]) =>
  console.info(
    `${what}: ${attempts.map(([name, a]) => `${name} ${a.error?.code} ${a.ms.toFixed(0)} ms`).join(", ")}`,
  );

describe("unreachable cloud", () => {
  it("refused: every call is unavailable at once (postgrest-js retries are off)", async () => {
    const s = open();
    await calls(s).get();
    await link.refuse();
    const attempts = await each(s);
    for (const [name, attempt] of attempts) {
      expect(attempt.error?.code, name).toBe("unavailable");
      expect(attempt.error?.message, name).toMatch(
        /cannot reach Supabase at 127\.0\.0\.1:\d+ \(connection (refused|reset)\)/,
      );
      expect(attempt.ms, name).toBeLessThan(FAST_MS);
    }
    report("refused", attempts);
  });

  it("blackholed: every call times out at its deadline; after pass the same source works", async () => {
    const s = open({ callTimeoutMs: DEADLINE_MS, probeTimeoutMs: DEADLINE_MS });
    await calls(s).get();
    await link.blackhole();
    const attempts = await each(s);
    for (const [name, attempt] of attempts) {
      expect(attempt.error?.code, name).toBe("timeout");
      // Not much before the deadline: Node starts a timer from the event loop's cached clock,
      // which lags performance.now() by however long the current loop turn has run (tens of ms
      // on a busy CI machine).
      expect(attempt.ms, name).toBeGreaterThanOrEqual(DEADLINE_MS - 100);
      expect(attempt.ms, name).toBeLessThan(DEADLINE_MS + SLACK_MS);
    }
    report("blackholed", attempts);
    await link.pass();
    const after = await each(s);
    for (const [name, attempt] of after) expect(attempt.error, name).toBeUndefined();
    report("after pass", after);
  });

  it("a connection reset mid-request is unavailable at once; the next call works", async () => {
    const s = open();
    await calls(s).get();
    await link.latency(300);
    const inFlight = timed(calls(s).list());
    await new Promise((resolve) => setTimeout(resolve, 100));
    link.reset();
    const attempt = await inFlight;
    expect(attempt.error?.code).toBe("unavailable");
    expect(attempt.ms).toBeLessThan(FAST_MS);
    await link.pass();
    expect((await timed(calls(s).list())).error).toBeUndefined();
  });

  it("a caller's abort rejects unavailable without waiting for the deadline", async () => {
    const s = open({ callTimeoutMs: 5_000 });
    await link.blackhole();
    const controller = new AbortController();
    const call = timed(s.table("branches").get(branchId, { signal: controller.signal }));
    setTimeout(() => controller.abort(), 50);
    const attempt = await call;
    expect(attempt.error?.code).toBe("unavailable");
    expect(attempt.ms).toBeLessThan(FAST_MS);
  });
});

describe("something else answers", () => {
  let fake: FakeServer | undefined;
  afterEach(async () => {
    await fake?.close();
    fake = undefined;
  });

  it("a captive portal (200 HTML everywhere) is unavailable, for the probe and for data", async () => {
    fake = await startFakeServer(captivePortal);
    const s = open({ url: fake.url });
    for (const [name, attempt] of await each(s)) {
      expect(attempt.error?.code, name).toBe("unavailable");
      expect(attempt.error?.message, name).not.toContain("Wi-Fi");
    }
  });

  it("a 503 from a cloud that lost its database is unavailable at once, asked once (no retry)", async () => {
    fake = await startFakeServer(databaseLost);
    const s = open({ url: fake.url });
    const attempt = await timed(calls(s).get());
    expect(attempt.error?.code).toBe("unavailable");
    expect(attempt.error?.message).toContain("PGRST000");
    // postgrest-js would retry a 503 GET after 1 s, 2 s and 4 s.
    expect(attempt.ms).toBeLessThan(900);
    expect(fake.requests).toBe(1);
    expect((await timed(s.probe())).error?.code).toBe("unavailable");
  });

  it("a cloud without cv_health (migration 0009 missing) is reachable but reported, not down", async () => {
    const s = open();
    await cloud.sql`alter function public.cv_health() rename to cv_health_off`;
    try {
      const attempt = await timed(s.probe());
      expect(attempt.error?.code).toBe("unknown");
      // PGRST202 once the schema cache reloaded, 42883 from PostgreSQL before that: both drift.
      expect(attempt.error?.message).toMatch(/\((PGRST202|42883), schema drift\)/);
    } finally {
      await cloud.sql`alter function public.cv_health_off() rename to cv_health`;
    }
    await cloud.stack.reloadSchema();
    expect((await timed(s.probe())).error).toBeUndefined();
  });
});
