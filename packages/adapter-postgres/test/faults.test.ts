import { randomUUID } from "node:crypto";
import type { DataSource } from "@centrovision/core";
import { clinicSession, createLink, type Link } from "@centrovision/testkit";
import { createFixtures, timed } from "@centrovision/testkit/contract";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { createPostgresSource, type PostgresConfigInput } from "../src/index.js";
import { createTestDatabase, type TestDatabase } from "./support/test-database.js";

// How fast a refusal fails and how closely a deadline holds are measured in bench/faults.bench.ts:
// these tests check what happened, from the error and from the link, never how long it took.
const fixtures = createFixtures();
let database: TestDatabase;
let link: Link;
let source: DataSource;
let branchId: string;

beforeAll(async () => {
  database = await createTestDatabase("faults");
  branchId = randomUUID();
  await database.sql`insert into branches (id, code, name, address) values (${branchId}, 'FAULTS', 'Centro', 'Roma 1')`;
});

afterAll(async () => {
  await database?.drop();
});

beforeEach(async () => {
  link = await createLink({ target: { host: "127.0.0.1", port: database.port } });
});

afterEach(async () => {
  // Heal the link before closing: postgres 3.4.9's end() waits out its whole grace period for a
  // connection that fails while it is still opening, and every test here breaks the link.
  await link.pass();
  await source?.close();
  await link.close();
});

function open(config: Partial<PostgresConfigInput> = {}): DataSource {
  source = createPostgresSource({ url: link.url(database.url), ...config } as PostgresConfigInput);
  return source;
}

const getBranch = (s: DataSource, timeoutMs?: number) =>
  s.table("branches").get(branchId, timeoutMs === undefined ? undefined : { timeoutMs });

/** Backends of this test's database waiting for a lock: a call the test holds at the server. */
async function waitingForLock(): Promise<number | undefined> {
  const [found] = await database.sql<{ n: number }[]>`
    select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`;
  return found?.n;
}

describe("unreachable server", () => {
  it("refused: unavailable as a refusal, not as a connect timeout, naming the server", async () => {
    const s = open({ connectTimeoutMs: 1_000 });
    await link.refuse();
    const attempt = await timed(getBranch(s));
    expect(attempt.error?.code).toBe("unavailable");
    // Waiting the refusal out would end in the connect timeout: "(no answer within 1000 ms)".
    expect(attempt.error?.message).toMatch(
      /cannot reach the clinic server at 127\.0\.0\.1:\d+\/faults_\w+ \(connection refused\)/,
    );
  });

  it("blackholed before connecting: timeout at the call deadline, then the same source recovers", async () => {
    const s = open({ callTimeoutMs: 800, connectTimeoutMs: 2_000 });
    await link.blackhole();
    const attempt = await timed(getBranch(s));
    // The call's own deadline, on a connection the link accepted and held: the connect timeout,
    // later, would have said unavailable.
    expect(attempt.error?.code).toBe("timeout");
    expect(attempt.error?.message).toContain("timed out after 800 ms");
    await expect.poll(() => link.stats.accepted).toBe(1);
    await link.pass();
    await vi.waitFor(() => getBranch(s), { timeout: 3_000 });
  });

  it("blackholed on open connections (half-open): every call times out at its deadline; the first call after pass works", async () => {
    const s = open({ callTimeoutMs: 800, max: 2 });
    await Promise.all([getBranch(s), getBranch(s), getBranch(s)]);
    await link.blackhole();
    // More calls than connections: some queue behind the dead sockets and must be bounded too.
    const stuck = await Promise.all([1, 2, 3, 4].map(() => timed(getBranch(s))));
    // The first deadline replaces the pool, which fails the calls still on it (unavailable).
    for (const attempt of stuck) expect(["timeout", "unavailable"]).toContain(attempt.error?.code);
    expect(stuck.some((attempt) => attempt.error?.code === "timeout")).toBe(true);
    // Still down: the replacement pool's new connection hangs in the blackhole, bounded as well.
    const accepted = link.stats.accepted;
    const again = await timed(getBranch(s, 500));
    expect(again.error?.code).toBe("timeout");
    expect(again.error?.message).toContain("timed out after 500 ms");
    await expect.poll(() => link.stats.accepted).toBeGreaterThan(accepted);
    await link.pass();
    // The dead pool was replaced, so nothing queues behind its sockets: no retry needed.
    const first = await timed(getBranch(s));
    expect(first.error).toBeUndefined();
    expect(first.value?.id).toBe(branchId);
  });

  it("probe: timeout within its own deadline on a blackhole, answers again after pass", async () => {
    const s = open({ probeTimeoutMs: 400 });
    await s.probe();
    await link.blackhole();
    const attempt = await timed(s.probe());
    expect(attempt.error?.code).toBe("timeout");
    // Its own deadline, not the calls' (callTimeoutMs).
    expect(attempt.error?.message).toBe("[adapter-postgres] probe timed out after 400 ms");
    await link.pass();
    await vi.waitFor(() => s.probe(), { timeout: 2_000 });
  });

  it("reset (server restart): the call in flight fails unavailable, the next call works", async () => {
    const s = open();
    await getBranch(s);
    await database.sql.begin(async (tx) => {
      // The call waits at the server behind this lock: in flight when the reset comes, however
      // slow the machine.
      await tx`lock table branches in access exclusive mode`;
      const inFlight = timed(getBranch(s));
      await expect.poll(waitingForLock).toBe(1);
      link.reset();
      expect((await inFlight).error?.code).toBe("unavailable");
    });
    const next = await timed(getBranch(s));
    expect(next.error).toBeUndefined();
  });

  it("reset while idle: once the reset has arrived, the next call reconnects and succeeds", async () => {
    const s = open();
    await getBranch(s);
    link.reset();
    await expect.poll(() => link.stats.active).toBe(0);
    const next = await timed(getBranch(s));
    expect(next.error).toBeUndefined();
    expect(link.stats.accepted).toBe(2);
  });

  it("reset racing a call: that call may fail unavailable (never hangs), the one after works", async () => {
    const s = open();
    await getBranch(s);
    link.reset();
    // Sent before the driver saw the reset: its outcome is unknown to the client, so no retry.
    // A call left hanging would end in its deadline instead: timeout.
    const racing = await timed(getBranch(s));
    if (racing.error) expect(racing.error.code).toBe("unavailable");
    expect((await timed(getBranch(s))).error).toBeUndefined();
  });
});

describe("a slow but reachable server", () => {
  it("statement_timeout answers timeout by itself and keeps the pool", async () => {
    const s = open({ statementTimeoutMs: 300, callTimeoutMs: 2_000 });
    const patient = await s.table("patients").insert(fixtures.patient(branchId, { document_id: null }));
    const accepted = link.stats.accepted;
    await database.sql.begin(async (tx) => {
      await tx`select 1 from patients where id = ${patient.id} for update`;
      const attempt = await timed(s.table("patients").update(patient.id, { first_name: "Lucía" }));
      expect(attempt.error?.code).toBe("timeout");
      expect(attempt.error?.message).toContain("statement_timeout");
    });
    expect((await s.table("patients").get(patient.id))?.first_name).toBe(patient.first_name);
    expect(link.stats.accepted).toBe(accepted);
  });

  it("probe uses its own connection: a saturated pool does not make the server look down", async () => {
    const s = open({ max: 1, statementTimeoutMs: 3_000, callTimeoutMs: 4_000 });
    const patient = await s.table("patients").insert(fixtures.patient(branchId, { document_id: null }));
    await database.sql.begin(async (tx) => {
      await tx`select 1 from patients where id = ${patient.id} for update`;
      const blocked = timed(s.table("patients").update(patient.id, { first_name: "Lucía" }));
      const probe = await timed(s.probe({ timeoutMs: 500 }));
      expect(probe.error).toBeUndefined();
      await tx`select pg_cancel_backend(pid) from pg_stat_activity where application_name = 'centrovision' and wait_event_type = 'Lock'`;
      expect((await blocked).error?.code).toBe("timeout");
    });
  });

  it("a caller's abort rejects unavailable without replacing the pool", async () => {
    const s = open();
    await getBranch(s);
    await link.latency(300);
    const controller = new AbortController();
    const call = timed(s.table("branches").get(branchId, { signal: controller.signal }));
    controller.abort();
    expect((await call).error?.code).toBe("unavailable");
    await link.pass();
    await getBranch(s);
    // The aborted call still holds its connection until its answer arrives, so the next call got
    // a second one: two connections, one pool (a replaced pool would have reconnected both).
    expect(link.stats.accepted).toBe(2);
    const accepted = link.stats.accepted;
    await getBranch(s);
    await getBranch(s);
    expect(link.stats.accepted).toBe(accepted);
  });
});

describe("logins", () => {
  it("wrong password: unauthorized, naming the user and never the password", async () => {
    const url = new URL(link.url(database.url));
    url.password = "not-the-Password-42";
    const s = open({ url: url.href });
    const attempt = await timed(getBranch(s));
    expect(attempt.error?.code).toBe("unauthorized");
    expect(attempt.error?.message).toBe(
      "[adapter-postgres] the clinic server refused the password for user postgres",
    );
    expect(JSON.stringify(attempt.error)).not.toContain("not-the-Password-42");
    expect(String(attempt.error?.cause && JSON.stringify(attempt.error.cause))).not.toContain(
      "not-the-Password-42",
    );
  });

  it("a PC login in centrovision_app, signed in as a person of the branch, can use every operation", async () => {
    const user = `pc_${randomUUID().slice(0, 8)}`;
    const person = randomUUID();
    await database.sql.unsafe(`create role ${user} login password 'recepcion-2026' in role centrovision_app`);
    // The person works at this branch (as the sync daemon brings it from the cloud).
    await database.sql`insert into profiles (id, full_name) values (${person}, 'Recepción Faults')`;
    await database.sql`insert into user_branches (id, user_id, branch_id) values (${randomUUID()}, ${person}, ${branchId})`;
    const token = await clinicSession(database.url, { userId: person });
    try {
      const url = new URL(link.url(database.url));
      url.username = user;
      url.password = "recepcion-2026";
      const s = open({ url: url.href, session: () => token });
      const repo = s.table("patients");
      const patient = await repo.insert(fixtures.patient(branchId, { document_id: null }));
      expect(await repo.get(patient.id)).toEqual(patient);
      const updated = await repo.update(
        patient.id,
        { phone: "+52 55 2222 3333" },
        { expectedVersion: patient.version },
      );
      expect(await repo.upsertMany([{ ...fixtures.patient(branchId, { document_id: null }) }])).toHaveLength(
        1,
      );
      expect((await repo.list({ where: { id: updated.id } }))[0]?.phone).toBe("+52 55 2222 3333");
      expect(await repo.delete(patient.id)).toBe(true);
      expect((await s.table("branches").get(branchId))?.id).toBe(branchId);
      await s.probe();
    } finally {
      await source.close();
      await database.sql.unsafe(`drop owned by ${user}; drop role ${user}`);
    }
  });

  it("a login outside centrovision_app: unauthorized, saying what a PC needs, with or without a session", async () => {
    const user = `nobody_${randomUUID().slice(0, 8)}`;
    await database.sql.unsafe(`create role ${user} login password 'sin-permisos-1'`);
    const token = await clinicSession(database.url, { userId: randomUUID() });
    try {
      const url = new URL(link.url(database.url));
      url.username = user;
      url.password = "sin-permisos-1";
      const attempt = await timed(getBranch(open({ url: url.href })));
      expect(attempt.error?.code).toBe("unauthorized");
      expect(attempt.error?.message).toContain(
        `user ${user} may not do this on branches: a PC works only as a signed-in person (a clinic session), with a login in centrovision_app`,
      );
      await source.close();
      // A session does not help a login that may not take the role: refused as it connects.
      const asPerson = await timed(getBranch(open({ url: url.href, session: () => token })));
      expect(asPerson.error?.code).toBe("unauthorized");
      expect(asPerson.error?.message).toContain(`user ${user} may not do this on branches`);
    } finally {
      await source.close();
      await database.sql.unsafe(`drop role ${user}`);
    }
  });
});
