import { randomUUID } from "node:crypto";
import type { DataSource } from "@centrovision/core";
import { createLink, type Link } from "@centrovision/testkit";
import { createFixtures, type Timed, timed } from "@centrovision/testkit/contract";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createSupabaseSource, type SupabaseConfigInput } from "../src/index.js";
import { captivePortal, databaseLost, type FakeServer, startFakeServer } from "./support/fake-servers.js";
import { type LocalCloud, startLocalCloud } from "./support/local-cloud.js";

// How fast a refusal fails and how closely a deadline holds are measured in bench/faults.bench.ts:
// these tests check what happened, from the error and from the link, never how long it took.
const DEADLINE_MS = 800;
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

/** Backends of the cloud's database waiting for a lock: a request the test holds at the database. */
async function waitingForLock(): Promise<number | undefined> {
  const [found] = await cloud.sql<{ n: number }[]>`
    select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`;
  return found?.n;
}

describe("unreachable cloud", () => {
  it("refused: every call is unavailable, never retried (postgrest-js retries are off)", async () => {
    const s = open();
    await calls(s).get();
    await link.refuse();
    for (const [name, attempt] of await each(s)) {
      // A retried GET waits 1 s, 2 s and 4 s between attempts and runs into the 5 s deadline: timeout.
      expect(attempt.error?.code, name).toBe("unavailable");
      expect(attempt.error?.message, name).toMatch(
        /cannot reach Supabase at 127\.0\.0\.1:\d+ \(connection (refused|reset)\)/,
      );
    }
  });

  it("blackholed: every call times out at its deadline; after pass the same source works", async () => {
    const s = open({ callTimeoutMs: DEADLINE_MS, probeTimeoutMs: DEADLINE_MS });
    await calls(s).get();
    const accepted = link.stats.accepted;
    await link.blackhole();
    for (const [name, attempt] of await each(s)) {
      expect(attempt.error?.code, name).toBe("timeout");
      expect(attempt.error?.message, name).toContain(`timed out after ${DEADLINE_MS} ms`);
    }
    // Held by the link, not stopped short of the network: the calls' connections reached it.
    expect(link.stats.accepted).toBeGreaterThan(accepted);
    await link.pass();
    for (const [name, attempt] of await each(s)) expect(attempt.error, name).toBeUndefined();
  });

  it("a connection reset mid-request is unavailable; the next call works", async () => {
    const s = open();
    await calls(s).get();
    await cloud.sql.begin(async (tx) => {
      // The request waits in the database behind this lock: in flight when the reset comes,
      // however slow the machine.
      await tx`lock table patients in access exclusive mode`;
      const inFlight = timed(calls(s).list());
      await expect.poll(waitingForLock).toBe(1);
      link.reset();
      // Waiting the reset out would end in the call's deadline: timeout.
      expect((await inFlight).error?.code).toBe("unavailable");
    });
    expect((await timed(calls(s).list())).error).toBeUndefined();
  });

  it("a caller's abort rejects unavailable without waiting for the deadline", async () => {
    const s = open({ callTimeoutMs: 5_000 });
    await link.blackhole();
    const controller = new AbortController();
    const call = timed(s.table("branches").get(branchId, { signal: controller.signal }));
    // Aborted once the request is out, held by the blackhole; the deadline would say timeout.
    await expect.poll(() => link.stats.accepted).toBe(1);
    controller.abort();
    expect((await call).error?.code).toBe("unavailable");
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
    // postgrest-js would retry a 503 GET after 1 s, 2 s and 4 s before the call settled.
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
