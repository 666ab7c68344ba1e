import {
  consultation,
  insertConsultation,
  patient,
  rowOf,
  serverUrl,
  update,
} from "@centrovision/testkit/nodes";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SyncDirection } from "../src/index.js";
import { type ChildLine, startEngineChild } from "./support/engine-process.js";
import { checksums, createSyncPair, duplicateLogEntries, type SyncPair } from "./support/sync-pair.js";

let pair: SyncPair;
let branchId: string;

beforeAll(async () => {
  pair = await createSyncPair();
  const base = consultation();
  branchId = base.branches.id;
  await insertConsultation(pair.cloud.sql, base);
  await pair.engine().syncNow();
});

afterAll(() => pair.close());

interface Workload {
  readonly cloud: string[];
  readonly clinic: string[];
}

/** Small transactions on both sides (patients, whole consultations, edits), so there are many pages. */
async function writeWorkload(label: string): Promise<Workload> {
  const written: Workload = { cloud: [], clinic: [] };
  for (const side of ["cloud", "clinic"] as const) {
    const sql = pair[side].sql;
    for (let n = 0; n < 12; n++) {
      const rows = consultation();
      await insertConsultation(sql, rows);
      written[side].push(rows.diagnoses.id);
      await sql.begin(async (tx) => {
        for (let i = 0; i < 8; i++) {
          const row = patient(branchId, `${label} ${side} ${n}.${i}`);
          await tx`insert into patients ${tx(row)}`;
          written[side].push(row.id);
        }
      });
      await update(sql, "patients", rows.patients.id, { notes: `${label}: control ${n}` });
    }
  }
  return written;
}

/** The kill interrupted the sync: the two sides still differ. */
async function expectInterrupted(): Promise<void> {
  expect(await checksums(pair.clinic.sql)).not.toEqual(await checksums(pair.cloud.sql));
}

async function recoverAndCheck(written: Workload): Promise<void> {
  const engine = pair.engine();
  let clean = false;
  for (let attempt = 0; attempt < 5 && !clean; attempt++) clean = (await engine.syncNow()).lastError === null;
  expect(clean).toBe(true);
  await engine.stop();
  expect(await checksums(pair.clinic.sql)).toEqual(await checksums(pair.cloud.sql));
  expect(await duplicateLogEntries(pair.clinic.sql)).toBe(0);
  expect(await duplicateLogEntries(pair.cloud.sql)).toBe(0);
  for (const id of [...written.cloud, ...written.clinic]) {
    const table = (await rowOf(pair.clinic.sql, "patients", id)) ? "patients" : "diagnoses";
    expect(await rowOf(pair.clinic.sql, table, id)).toBeDefined();
    expect(await rowOf(pair.cloud.sql, table, id)).toBeDefined();
  }
  // Each node's audit trail (sql/0012): one event for every change made there, applies and
  // re-issues included, and its chain intact once sealed, however the sync was cut.
  for (const sql of [pair.clinic.sql, pair.cloud.sql]) {
    await sql`select cv_audit_seal()`;
    const [{ verified } = { verified: undefined }] = await sql`select cv_audit_verify() as verified`;
    expect(verified).toMatchObject({ ok: true, unsealed: 0 });
    const [counts] = await sql<{ events: number; changes: number }[]>`
      select (select count(*)::int from cv_audit.events e where e.node_id = n.node_id and e.action <> 'open') as events,
        (select count(*)::int from cv_sync.change_log l where l.received_from is null and l.op <> 'rescope') as changes
      from cv_sync.node n`;
    expect(counts?.events).toBe(counts?.changes);
  }
}

const progressOf = (line: ChildLine) => ("progress" in line ? line.progress : undefined);

function killAt(direction: SyncDirection, event: "pulled" | "applied", nth: number) {
  let seen = 0;
  return (line: ChildLine) => {
    const progress = progressOf(line);
    if (progress?.direction === direction && progress.stage === "log" && progress.event === event) seen++;
    return seen === nth;
  };
}

/** Waits until an apply on `database` is waiting for a lock; returns its backend pid. */
async function blockedApply(admin: postgres.Sql, database: string): Promise<number> {
  for (let i = 0; i < 400; i++) {
    const [found] = await admin<{ pid: number }[]>`
      select pid from pg_stat_activity
      where datname = ${database} and wait_event_type = 'Lock' and query like '%cv_sync_apply%'`;
    if (found) return found.pid;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error("no apply waited for the lock");
}

/**
 * Holds an exclusive lock on `diagnoses` on one node, so an apply there stops halfway (after the
 * parent tables), kills the engine while it waits, then lets the apply commit or kills it too.
 */
async function killMidApply(side: "cloud" | "clinic", ending: "commit" | "terminate"): Promise<void> {
  const written = await writeWorkload(`mid-apply ${side} ${ending}`);
  const admin = postgres(serverUrl(), { max: 2, onnotice: () => {} });
  const database =
    side === "cloud" ? new URL(pair.cloud.supabase.dbUrl).pathname.slice(1) : pair.clinic.database;
  const holder = await pair[side].sql.reserve();
  await holder`begin`;
  await holder`lock table diagnoses in exclusive mode`;
  const child = startEngineChild({ ...pair.childEnv(), CV_PAGE_SIZE: "500" });
  const pid = await blockedApply(admin, database);
  child.kill();
  expect((await child.exited).signal).toBe("SIGKILL");
  await expectInterrupted();
  if (ending === "terminate") await admin`select pg_terminate_backend(${pid})`;
  await holder`rollback`;
  holder.release();
  await admin.end();
  await recoverAndCheck(written);
}

describe("kill -9 of the engine at each step, then a restart", () => {
  it("right after a pull, before its apply", async () => {
    const written = await writeWorkload("after pull");
    const child = startEngineChild({ ...pair.childEnv(), CV_PAGE_SIZE: "20" }, killAt("pull", "pulled", 2));
    expect((await child.exited).signal).toBe("SIGKILL");
    await expectInterrupted();
    await recoverAndCheck(written);
  });

  it("between batches, right after one was saved", async () => {
    const written = await writeWorkload("between batches");
    const child = startEngineChild({ ...pair.childEnv(), CV_PAGE_SIZE: "20" }, killAt("pull", "applied", 3));
    expect((await child.exited).signal).toBe("SIGKILL");
    await expectInterrupted();
    await recoverAndCheck(written);
  });

  it("mid-apply on the clinic server; the orphaned apply commits after the engine died", async () => {
    await killMidApply("clinic", "commit");
  });

  it("mid-apply on the clinic server; the orphaned apply is rolled back", async () => {
    await killMidApply("clinic", "terminate");
  });

  it("mid-push to the cloud; the request the gateway still runs commits after the engine died", async () => {
    await killMidApply("cloud", "commit");
  });

  it("mid-push, between push batches", async () => {
    const written = await writeWorkload("mid push");
    const child = startEngineChild({ ...pair.childEnv(), CV_PAGE_SIZE: "20" }, killAt("push", "applied", 2));
    expect((await child.exited).signal).toBe("SIGKILL");
    await expectInterrupted();
    await recoverAndCheck(written);
  });
});
