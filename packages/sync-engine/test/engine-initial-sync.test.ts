import { readFileSync } from "node:fs";
import { SYNCED_TABLES } from "@centrovision/core";
import { consultation, insertConsultation, patient, remove, update } from "@centrovision/testkit/nodes";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSyncEngine, type SyncPeer, type SyncPhase, type SyncProgress } from "../src/index.js";
import { startEngineChild } from "./support/engine-process.js";
import {
  checksums,
  clinicNodePeer,
  createSyncPair,
  duplicateLogEntries,
  type SyncPair,
} from "./support/sync-pair.js";

let pair: SyncPair;
let branchId: string;
const PATIENTS = 1_500;

beforeAll(async () => {
  pair = await createSyncPair();
  for (let n = 0; n < 20; n++) {
    const rows = consultation();
    branchId ??= rows.branches.id;
    await insertConsultation(pair.cloud.sql, rows);
  }
  await pair.cloud.sql`
    insert into patients (id, branch_id, first_name, last_name, birth_date, sex, phone)
    select gen_random_uuid(), ${branchId}, 'Paciente ' || n, 'Sembrado', date '1970-01-01' + n, 'unknown', '55 0000 0000'
    from generate_series(1, ${PATIENTS}) n`;
});

afterAll(() => pair.close());

async function snapshotProgress() {
  const [row] = await pair.clinic.sql<{ progress: { table: string; done: boolean } | null }[]>`
    select snapshot_progress as progress from cv_sync.peers where peer_id = ${pair.cloud.nodeId}`;
  return row?.progress ?? null;
}

/** Counts pages read from the cloud and not yet written on the clinic: what the engine holds. */
function counting(cloud: SyncPeer, clinic: SyncPeer) {
  let held = 0;
  let maxHeld = 0;
  const remote: SyncPeer = {
    ...cloud,
    snapshot: async (request, options) => {
      const page = await cloud.snapshot(request, options);
      maxHeld = Math.max(maxHeld, ++held);
      return page;
    },
  };
  const local: SyncPeer = {
    ...clinic,
    applySnapshot: async (source, page, options) => {
      try {
        return await clinic.applySnapshot(source, page, options);
      } finally {
        held--;
      }
    },
  };
  return { remote, local, maxHeld: () => maxHeld };
}

describe("initial sync of an empty clinic server from a seeded cloud", () => {
  it("is killed mid-copy, resumes where the clinic says it stands, catches up with later writes, converges", async () => {
    let copied = 0;
    const child = startEngineChild({ ...pair.childEnv(), CV_SNAPSHOT_PAGE_SIZE: "100" }, (line) => {
      if ("progress" in line && line.progress.stage === "snapshot" && line.progress.event === "applied")
        copied++;
      return copied === 8;
    });
    expect((await child.exited).signal).toBe("SIGKILL");
    const stoppedAt = await snapshotProgress();
    expect(stoppedAt).toMatchObject({ done: false });

    // The cloud keeps working while the clinic server is down: edits, a new row, a delete (of a
    // patient without a consultation: the foreign keys restrict deleting the others).
    const [first, second] = await pair.cloud.sql<
      { id: string }[]
    >`select id from patients where last_name = 'Sembrado' order by id limit 2`;
    await update(pair.cloud.sql, "patients", first?.id as string, { notes: "Editado durante la copia" });
    await remove(pair.cloud.sql, "patients", second?.id as string);
    const late = consultation();
    await insertConsultation(pair.cloud.sql, late);

    const { remote, local, maxHeld } = counting(pair.cloudPeer(), pair.clinicPeer());
    const engine = createSyncEngine({ local, remote, intervalMs: 60_000, snapshotPageSize: 100 });
    const events: SyncProgress[] = [];
    const phases = new Set<SyncPhase>();
    engine.progress$.subscribe((event) => events.push(event));
    engine.status$.subscribe((status) => phases.add(status.phase));
    const status = await engine.syncNow();
    await engine.stop();

    expect(status.lastError).toBeNull();
    expect(phases.has("initial-sync")).toBe(true);
    const copiedPages = events.filter((e) => e.stage === "snapshot" && e.event === "applied");
    expect(copiedPages[0]?.table).toBe(stoppedAt?.table);
    const resumedRows = copiedPages.reduce((sum, e) => sum + e.pageRows, 0);
    expect(resumedRows).toBeLessThan(PATIENTS);
    expect(maxHeld()).toBeLessThanOrEqual(2);
    expect(await snapshotProgress()).toMatchObject({ done: true });
    expect(await checksums(pair.clinic.sql)).toEqual(await checksums(pair.cloud.sql));
    expect(await duplicateLogEntries(pair.clinic.sql)).toBe(0);
    // A copied row is not logged as a change on the clinic: it would only be sent back.
    const [logged] = await pair.clinic.sql<
      { n: number }[]
    >`select count(*)::int as n from cv_sync.change_log`;
    expect(logged?.n).toBeLessThan(100);
  });

  it("copies the tables in foreign-key order", async () => {
    const clean = await createSyncPair();
    try {
      await insertConsultation(clean.cloud.sql, consultation());
      await clean.cloud
        .sql`insert into patients ${clean.cloud.sql(patient((await clean.cloud.sql<{ id: string }[]>`select id from branches`)[0]?.id as string, "Orden"))}`;
      const engine = clean.engine({ snapshotPageSize: 1 });
      const tables: string[] = [];
      engine.progress$.subscribe((e) => {
        if (e.stage === "snapshot" && e.event === "applied" && e.table && tables.at(-1) !== e.table)
          tables.push(e.table);
      });
      expect((await engine.syncNow()).lastError).toBeNull();
      expect(tables).toEqual([...SYNCED_TABLES]);
      expect(await checksums(clean.clinic.sql)).toEqual(await checksums(clean.cloud.sql));
    } finally {
      await clean.close();
    }
  });

  it("signed in as a clinic's node credential, copies only that clinic's scope", async () => {
    const clean = await createSyncPair();
    try {
      const mine = consultation();
      const other = consultation();
      for (const rows of [mine, other]) await insertConsultation(clean.cloud.sql, rows);
      const remote = await clinicNodePeer(clean, [mine.branches.id]);
      const local = clean.clinicPeer();
      const engine = createSyncEngine({ local, remote, intervalMs: 60_000, snapshotPageSize: 2 });
      try {
        expect((await engine.syncNow()).lastError).toBeNull();
      } finally {
        await engine.stop();
        await remote.close();
      }
      const held = async (table: string, id: string) =>
        (await clean.clinic.sql.unsafe(`select 1 from ${table} where id = $1`, [id])).length;
      // Every clinic holds every branch (PROTOCOL.md "Scope"); the rest of the other branch's
      // consultation is out of this clinic's scope.
      for (const table of SYNCED_TABLES) {
        expect(await held(table, mine[table].id as string), table).toBe(1);
        expect(await held(table, other[table].id as string), table).toBe(table === "branches" ? 1 : 0);
      }
    } finally {
      await clean.close();
    }
  });

  it.each([
    ["cv_sync_snapshot", "text, uuid, integer"],
    ["cv_sync_pull", "uuid, jsonb, integer"],
  ])(
    "against a cloud whose %s is older than the daemon's (one json page), says to migrate the cloud",
    async (fn, args) => {
      const clean = await createSyncPair();
      try {
        // The function as the numbered migrations left it, before its functions/ file.
        const numbered = readFileSync(new URL("../../../sql/0006_sync_read.sql", import.meta.url), "utf8");
        const start = numbered.indexOf(`CREATE FUNCTION public.${fn}(`);
        const older = numbered.slice(start, numbered.indexOf("$$;", start) + 3);
        await clean.cloud.sql.unsafe(`DROP FUNCTION public.${fn}(${args}); ${older}`);
        await insertConsultation(clean.cloud.sql, consultation());
        const status = await clean.engine().syncNow();
        expect(status.lastError).toMatchObject({
          code: "invalid_config",
          message: expect.stringContaining("Run `centrovision-sync cloud migrate` against the cloud"),
        });
        expect(status.lastError?.message).not.toContain("malformed");
      } finally {
        await clean.close();
      }
    },
  );
});
