import { randomUUID } from "node:crypto";
import {
  consultation,
  createNode,
  failureCode,
  insertConsultation,
  rowOf,
  type SqlNode,
  update,
} from "@centrovision/testkit/nodes";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  applySnapshot,
  conflicts,
  copyTables,
  expectConverged,
  snapshotPage,
  snapshotProgress,
  storedCursor,
  sync,
} from "../support/sql-sync.js";

/* Initial sync (PROTOCOL.md "Initial sync") and purge. Fresh nodes per test: an empty clinic. */

let cloud: SqlNode;
let clinicNode: SqlNode;
beforeEach(async () => {
  [cloud, clinicNode] = await Promise.all([createNode("cloud"), createNode("clinic")]);
});
afterEach(async () => {
  await Promise.all([cloud?.drop(), clinicNode?.drop()]);
});

/** A consultation on the cloud, and `count` more patients in its branch. */
async function consultationWithPatients(count: number): Promise<void> {
  const graph = consultation();
  await insertConsultation(cloud.sql, graph);
  await cloud.sql`
    insert into patients (id, branch_id, first_name, last_name, birth_date, sex, phone)
    select gen_random_uuid(), ${graph.branches.id}, 'Paciente ' || n, 'Página', date '1950-01-01' + n, 'unknown', '55 1234 5678'
    from generate_series(1, ${count}::int) n`;
}

async function count(node: SqlNode, query: string): Promise<number> {
  const [found] = await node.sql.unsafe<{ n: number }[]>(`select count(*)::int as n from ${query}`);
  return found?.n ?? 0;
}

describe("initial sync", () => {
  it("copies paged while the cloud keeps writing, then catches up to the same rows", async () => {
    const graphs = [consultation(), consultation(), consultation()];
    for (const rows of graphs) await insertConsultation(cloud.sql, rows);
    // Written after the branches were copied; its room sorts last, so the room's page is read
    // when its branch is not on the clinic: the room is left out of the copy (no dangling
    // reference, foreign keys stay checked) and both come with the catch-up, branch first.
    const late = consultation();
    late.rooms.id = `ffffffff-ffff-4fff-8fff-${randomUUID().slice(-12)}`;
    late.appointments.room_id = late.rooms.id;
    let step = 0;
    const writeMeanwhile = async () => {
      step += 1;
      if (step === 2) await insertConsultation(cloud.sql, late);
      if (step === 5)
        await update(cloud.sql, "branches", graphs[0]?.branches.id ?? "", { name: "Renombrada" });
      if (step === 9) await cloud.sql`delete from diagnoses where id = ${graphs[1]?.diagnoses.id ?? ""}`;
    };
    expect(await copyTables(cloud, clinicNode, { limit: 2, between: writeMeanwhile })).toBe(true);
    expect(await rowOf(clinicNode.sql, "rooms", late.rooms.id)).toBeUndefined();
    expect(await rowOf(clinicNode.sql, "branches", late.branches.id)).toBeUndefined();
    await sync(cloud, clinicNode);
    expect(await rowOf(clinicNode.sql, "rooms", late.rooms.id)).toBeDefined();

    await expectConverged(cloud, clinicNode);
    expect(await conflicts(clinicNode, null)).toEqual([]);
    expect(await rowOf(clinicNode.sql, "branches", graphs[0]?.branches.id ?? "")).toMatchObject({
      name: "Renombrada",
    });
    // Copied rows are state, not changes: the clinic's log holds only what the catch-up replayed.
    expect(await count(clinicNode, "cv_sync.change_log")).toBeLessThan(15);
    expect(await count(clinicNode, "cv_sync.row_state")).toBe(await count(cloud, "cv_sync.row_state"));
  });

  it("resumes after a crash where the clinic says it stands; a repeated page is a duplicate", async () => {
    for (let i = 0; i < 3; i += 1) await insertConsultation(cloud.sql, consultation());
    expect(await copyTables(cloud, clinicNode, { limit: 2, maxPages: 3 })).toBe(false);
    const at = await snapshotProgress(clinicNode, cloud);
    expect(at).toMatchObject({ table: "rooms", after_id: expect.any(String), done: false });

    const replayed = await snapshotPage(cloud, "branches", null, 2);
    expect(await applySnapshot(clinicNode, cloud, replayed)).toMatchObject({ status: "duplicate" });
    const skipped = await snapshotPage(cloud, "patients", null, 2);
    expect(await failureCode(() => applySnapshot(clinicNode, cloud, skipped))).toBe("CV003");

    expect(await copyTables(cloud, clinicNode, { limit: 2 })).toBe(true);
    await sync(cloud, clinicNode);
    await expectConverged(cloud, clinicNode);
  });

  it("sends a page as its header, then its rows in id order in chunks of at most 100, then an empty chunk (its end)", async () => {
    await consultationWithPatients(300);
    const [first] = await cloud.sql<{ id: string }[]>`select min(id::text)::uuid as id from patients`;
    const set = async (limit: number) =>
      (
        await cloud.sql<
          { r: unknown }[]
        >`select r from cv_sync_snapshot('patients', ${first?.id as string}::uuid, ${limit}) r`
      ).map((row) => row.r);
    const ids = (
      await cloud.sql<{ id: string }[]>`select id from patients where id > ${first?.id as string} order by id`
    ).map((row) => row.id);
    const [header, ...chunks] = await set(250);
    expect(chunks.map((chunk) => (chunk as unknown[]).length)).toEqual([100, 100, 50, 0]);
    const rows = (chunks as string[][][]).flat();
    expect(rows.map((row) => row[0])).toEqual(ids.slice(0, 250));
    expect(header).toMatchObject({
      table: "patients",
      after_id: first?.id,
      last_id: ids[249],
      has_more: true,
      end_marker: true,
    });
    // The rest: one short chunk, has_more false, last_id the last row.
    const [end, ...rest] = await set(ids.length);
    const sizes = Array.from({ length: Math.ceil(ids.length / 100) }, (_, i) =>
      Math.min(100, ids.length - i * 100),
    );
    expect(rest.map((chunk) => (chunk as unknown[]).length)).toEqual([...sizes, 0]);
    expect(end).toMatchObject({ last_id: ids.at(-1), has_more: false });
    // A page of more than 99,800 rows comes in fewer, larger chunks: never over db-max-rows (1000)
    // with its header and end.
    const [huge] = await cloud.sql<{ n: number }[]>`
      select count(*)::int as n from cv_sync_snapshot('patients', null, 200000) r`;
    expect(huge?.n).toBe(2 + Math.ceil((ids.length + 1) / 201));
    // Past the engine's largest page, a credential could make one statement hold any page.
    for (const limit of [0, 200_001, 2_147_483_647]) {
      expect(await failureCode(() => cloud.sql`select cv_sync_snapshot('patients', null, ${limit})`)).toBe(
        "CV005",
      );
    }
  });

  it("reads each page's HLCs by key, never the table's whole row_state (a page of 500 of 6,000 patients)", async () => {
    await consultationWithPatients(6000);
    await cloud.sql`analyze`;
    // One session: its own counts are flushed (pg_stat_force_next_flush) before it reads them.
    const session = await cloud.sql.reserve();
    const scans = async () => {
      await session`select pg_stat_force_next_flush()`;
      const [found] = await session<{ seq: number; idx: number }[]>`
        select seq_scan::int as seq, idx_scan::int as idx from pg_stat_user_tables
        where schemaname = 'cv_sync' and relname = 'row_state'`;
      return found ?? { seq: -1, idx: -1 };
    };
    const before = await scans();
    const [page] = await session<{ rows: number }[]>`
      select sum(json_array_length(r)) filter (where json_typeof(r) = 'array')::int as rows
      from cv_sync_snapshot('patients', null, 500) r`;
    expect(page?.rows).toBe(500);
    const after = await scans();
    session.release();
    // Joined, the planner hashed the page against a scan of all of row_state (every table's entries).
    expect(after.seq - before.seq).toBe(0);
    expect(after.idx - before.idx).toBeGreaterThanOrEqual(500);
  });
});

describe("cv_sync_purge", () => {
  const purge = async (node: SqlNode, retention: string, limit: number | null = null) =>
    (
      await node.sql<
        { r: { log_entries: number; tombstones: number; more: boolean; log_size: number | null } }[]
      >`select cv_sync_purge(${retention}, ${limit}) as r`
    )[0]?.r;

  it("keeps everything until every peer has acknowledged it, whatever its age", async () => {
    const rows = consultation();
    await insertConsultation(cloud.sql, rows);
    await cloud.sql`delete from diagnoses where id = ${rows.diagnoses.id}`;
    const size = async () =>
      (await cloud.sql<{ n: number }[]>`select count(*)::int as n from cv_sync.change_log`)[0]?.n;
    expect(await purge(cloud, "0 seconds")).toEqual({
      log_entries: 0,
      tombstones: 0,
      more: false,
      log_size: await size(),
    }); // no peer yet

    await sync(cloud, clinicNode);
    expect(await purge(cloud, "90 days")).toEqual({
      log_entries: 0,
      tombstones: 0,
      more: false,
      log_size: await size(),
    }); // too recent
    await cloud.sql`delete from exam_eye where id = ${rows.exam_eye.id}`; // not acknowledged yet
    // In batches, oldest first, as over an API with a statement timeout.
    // Counted once nothing more is due.
    expect(await purge(cloud, "0 seconds", 6)).toEqual({
      log_entries: 6,
      tombstones: 1,
      more: true,
      log_size: null,
    });
    expect(await purge(cloud, "0 seconds", 6)).toEqual({
      log_entries: 5,
      tombstones: 0,
      more: false,
      log_size: await size(),
    });
    const [kept] = await cloud.sql`
      select s.deleted, (select count(*)::int from cv_sync.change_log l where l.row_id = s.row_id) as entries
      from cv_sync.row_state s where s.row_id = ${rows.exam_eye.id}`;
    expect(kept).toEqual({ deleted: true, entries: 1 });

    await sync(cloud, clinicNode);
    expect(await purge(cloud, "0 seconds")).toEqual({
      log_entries: 1,
      tombstones: 1,
      more: false,
      log_size: await size(),
    });
    await expectConverged(cloud, clinicNode);
    expect((await storedCursor(clinicNode, cloud)).txid).toBeGreaterThan(0);
  });
});
