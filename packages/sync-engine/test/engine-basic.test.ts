import {
  consultation,
  insert,
  insertConsultation,
  patient,
  remove,
  rowOf,
  update,
} from "@centrovision/testkit/nodes";
import type postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SyncEngine } from "../src/index.js";
import { checksums, createSyncPair, duplicateLogEntries, type SyncPair } from "./support/sync-pair.js";

let pair: SyncPair;
let engine: SyncEngine;
let branchId: string;

beforeAll(async () => {
  pair = await createSyncPair();
  engine = pair.engine();
  const base = consultation();
  branchId = base.branches.id;
  await insertConsultation(pair.cloud.sql, base);
  await engine.syncNow();
});

afterAll(() => pair.close());

async function sync() {
  const status = await engine.syncNow();
  expect(status.lastError).toBeNull();
  return status;
}

async function expectConverged(): Promise<void> {
  expect(await checksums(pair.clinic.sql)).toEqual(await checksums(pair.cloud.sql));
  expect(await duplicateLogEntries(pair.clinic.sql)).toBe(0);
  expect(await duplicateLogEntries(pair.cloud.sql)).toBe(0);
}

async function logEntries(node: SyncPair["cloud"] | SyncPair["clinic"], rowId: string): Promise<number> {
  const [row] = await node.sql<
    { n: number }[]
  >`select count(*)::int as n from cv_sync.change_log where row_id = ${rowId}`;
  return row?.n ?? 0;
}

async function conflictsOf(node: SyncPair["cloud"] | SyncPair["clinic"], rowId: string) {
  return node.sql<{ id: string; winner: string; status: string; columns: string[] | null }[]>`
    select id, winner, status, columns from cv_sync.conflicts where row_id = ${rowId} order by created_at`;
}

describe("sync engine between a local Supabase and a clinic server", () => {
  it("moves consultations both ways and reports nothing pending", async () => {
    const fromCloud = consultation();
    const fromClinic = consultation();
    await insertConsultation(pair.cloud.sql, fromCloud);
    await insertConsultation(pair.clinic.sql, fromClinic);
    const status = await sync();
    expect(await rowOf(pair.clinic.sql, "diagnoses", fromCloud.diagnoses.id)).toBeDefined();
    expect(await rowOf(pair.cloud.sql, "diagnoses", fromClinic.diagnoses.id)).toBeDefined();
    await expectConverged();
    expect(status).toMatchObject({ phase: "idle", pendingUp: 0, pendingDown: 0, consecutiveFailures: 0 });
    expect(status.lastSuccessAt).not.toBeNull();
    expect(status.clockSkewMs).toEqual(expect.any(Number));
  });

  it("never echoes an applied change back to where it came from", async () => {
    const row = patient(branchId, "Eco");
    await insert(pair.clinic.sql, "patients", row);
    await sync();
    const version = (await rowOf(pair.cloud.sql, "patients", row.id))?.version;
    await sync();
    await sync();
    // One capture at the clinic, one applied entry in the cloud; nothing bounced back.
    expect(await logEntries(pair.clinic, row.id)).toBe(1);
    expect(await logEntries(pair.cloud, row.id)).toBe(1);
    expect((await rowOf(pair.clinic.sql, "patients", row.id))?.version).toBe(version);
    await expectConverged();
  });

  it("picks up a transaction that was open during a cycle and committed after it, once", async () => {
    const late = patient(branchId, "Tardío");
    const early = patient(branchId, "Temprano");
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let inserted!: () => void;
    const written = new Promise<void>((resolve) => (inserted = resolve));
    const open = pair.cloud.sql.begin(async (tx) => {
      await insert(tx, "patients", late);
      inserted();
      await gate;
    });
    await written;
    await insert(pair.cloud.sql, "patients", early);
    await sync();
    expect(await rowOf(pair.clinic.sql, "patients", late.id)).toBeUndefined();
    release();
    await open;
    await sync();
    expect(await rowOf(pair.clinic.sql, "patients", late.id)).toBeDefined();
    expect(await rowOf(pair.clinic.sql, "patients", early.id)).toBeDefined();
    expect(await logEntries(pair.clinic, late.id)).toBe(1);
    await expectConverged();
  });

  it("settles the same column edited on both sides by last write wins, and records the conflict on both", async () => {
    const row = patient(branchId, "Conflicto");
    await insert(pair.cloud.sql, "patients", row);
    await sync();
    await update(pair.clinic.sql, "patients", row.id, { allergies: "Sulfas (clínica)" });
    await update(pair.cloud.sql, "patients", row.id, { allergies: "Látex (nube)" });
    const status = await sync();
    await expectConverged();
    expect((await rowOf(pair.clinic.sql, "patients", row.id))?.allergies).toBe("Látex (nube)");
    const [clinicConflict] = await conflictsOf(pair.clinic, row.id);
    const [cloudConflict] = await conflictsOf(pair.cloud, row.id);
    expect(clinicConflict).toMatchObject({ status: "open", columns: ["allergies"] });
    expect(cloudConflict?.id).toBe(clinicConflict?.id);
    expect(status.conflictsOpen).toBeGreaterThanOrEqual(1);
  });

  it("merges edits of different columns without an open conflict", async () => {
    const row = patient(branchId, "Fusión");
    await insert(pair.cloud.sql, "patients", row);
    await sync();
    await update(pair.clinic.sql, "patients", row.id, { phone: "55 1111 2222" });
    await update(pair.cloud.sql, "patients", row.id, { notes: "Prefiere cita matutina" });
    await sync();
    await sync();
    await expectConverged();
    expect(await rowOf(pair.cloud.sql, "patients", row.id)).toMatchObject({
      phone: "55 1111 2222",
      notes: "Prefiere cita matutina",
    });
    expect((await conflictsOf(pair.clinic, row.id)).filter((c) => c.status === "open")).toEqual([]);
  });

  it("settles an update against a delete by the later one, keeping the loser", async () => {
    const updatedLater = patient(branchId, "Editado después");
    const deletedLater = patient(branchId, "Borrado después");
    await insert(pair.cloud.sql, "patients", updatedLater);
    await insert(pair.cloud.sql, "patients", deletedLater);
    await sync();
    await remove(pair.cloud.sql, "patients", updatedLater.id);
    await update(pair.clinic.sql, "patients", updatedLater.id, { notes: "Glaucoma: control en 3 meses" });
    await update(pair.clinic.sql, "patients", deletedLater.id, { notes: "Reagendar" });
    await remove(pair.cloud.sql, "patients", deletedLater.id);
    await sync();
    await sync();
    await expectConverged();
    expect((await rowOf(pair.cloud.sql, "patients", updatedLater.id))?.notes).toBe(
      "Glaucoma: control en 3 meses",
    );
    expect(await rowOf(pair.clinic.sql, "patients", deletedLater.id)).toBeUndefined();
    expect(await conflictsOf(pair.clinic, updatedLater.id)).toHaveLength(1);
    expect(await conflictsOf(pair.clinic, deletedLater.id)).toHaveLength(1);
  });

  it("sends nothing for a row created and deleted while the link was down", async () => {
    await pair.cloud.link.refuse();
    const row = patient(branchId, "Efímero");
    await insert(pair.clinic.sql, "patients", row);
    await remove(pair.clinic.sql, "patients", row.id);
    const failed = await engine.syncNow();
    expect(failed.lastError?.code).toBe("unavailable");
    await pair.cloud.link.pass();
    await sync();
    expect(await rowOf(pair.cloud.sql, "patients", row.id)).toBeUndefined();
    expect(await conflictsOf(pair.cloud, row.id)).toEqual([]);
    await expectConverged();
  });

  it("moves parents and children created offline in separate transactions", async () => {
    await pair.cloud.link.refuse();
    const rows = consultation();
    for (const table of Object.keys(rows) as (keyof typeof rows)[])
      await insert(pair.clinic.sql, table, rows[table]);
    await engine.syncNow();
    await pair.cloud.link.pass();
    await sync();
    expect(await rowOf(pair.cloud.sql, "diagnoses", rows.diagnoses.id)).toBeDefined();
    await expectConverged();
  });

  it("resolves a conflict on the clinic and converges both sides on the choice", async () => {
    const row = patient(branchId, "Revisión");
    await insert(pair.cloud.sql, "patients", row);
    await sync();
    await update(pair.cloud.sql, "patients", row.id, { allergies: "Yodo (nube)" });
    await update(pair.clinic.sql, "patients", row.id, { allergies: "Ninguna (clínica)" });
    await sync();
    const [conflict] = (await engine.listConflicts()).filter((c) => c.rowId === row.id);
    expect(conflict).toBeDefined();
    const loser = conflict?.winner === "local" ? "remote" : "local";
    const kept = loser === "local" ? conflict?.localRow : conflict?.remoteRow;
    await engine.resolveConflict(conflict?.id as string, { keep: loser }, { resolvedBy: "dra.hernandez" });
    await sync();
    await expectConverged();
    expect((await rowOf(pair.cloud.sql, "patients", row.id))?.allergies).toBe(kept?.allergies);
    const settled = (await engine.listConflicts({ status: "all" })).find((c) => c.id === conflict?.id);
    expect(settled).toMatchObject({ status: "resolved" });
    const [onCloud] = await conflictsOf(pair.cloud, row.id);
    expect(onCloud?.status).toBe("resolved");
  });

  it("applies a round of document numbers among patients both ways, also when a page ends inside it", async () => {
    // Pages of one change: a transaction of three is split (PROTOCOL.md, cv_sync_pull), and an
    // engine of its own, one per pair.
    const paged = await createSyncPair();
    try {
      const small = paged.engine({ pageSize: 1 });
      const base = consultation();
      await insertConsultation(paged.cloud.sql, base);
      const tag = base.branches.id.slice(0, 8).toUpperCase();
      const documents = [1, 2, 3].map((n) => `ROUND-${n}-${tag}`);
      const rows = documents.map((document_id, i) => ({
        ...patient(base.branches.id, `Ronda ${i}`),
        document_id,
      }));
      for (const row of rows) await insert(paged.cloud.sql, "patients", row);
      expect((await small.syncNow()).lastError).toBeNull();
      const [one, two, three] = rows.map((row) => row.id as string) as [string, string, string];
      // Each takes the next one's number, in one statement: the keys are checked at its end, so
      // the source takes it; on the target, a row's new image meets the next row's old key until
      // that one is written too.
      const round = (sql: postgres.Sql) => sql`
        update patients p set document_id = o.document_id
        from (values (${one}::uuid, ${two}::uuid), (${two}, ${three}), (${three}, ${one})) m(id, next)
        join patients o on o.id = m.next
        where p.id = m.id`;
      const documentOf = async (sql: postgres.Sql) => (await rowOf(sql, "patients", one))?.document_id;
      await round(paged.cloud.sql);
      expect(await small.syncNow()).toMatchObject({ lastError: null, blocked: [] });
      expect(await documentOf(paged.clinic.sql)).toBe(documents[1]);
      await round(paged.clinic.sql);
      expect(await small.syncNow()).toMatchObject({ lastError: null, blocked: [], pendingUp: 0 });
      expect(await documentOf(paged.cloud.sql)).toBe(documents[2]);
      expect(await checksums(paged.clinic.sql)).toEqual(await checksums(paged.cloud.sql));
    } finally {
      await paged.close();
    }
  });

  it("blocks on a record registered on both sides after two larger pages, not after every size up to the largest", async () => {
    const paged = await createSyncPair();
    try {
      const small = paged.engine({ pageSize: 4, maxPageSize: 256 });
      const base = consultation();
      await insertConsultation(paged.cloud.sql, base);
      expect((await small.syncNow()).lastError).toBeNull();
      const document_id = `TWICE-${base.branches.id.slice(0, 8).toUpperCase()}`;
      await insert(paged.clinic.sql, "patients", {
        ...patient(base.branches.id, "En la clínica"),
        document_id,
      });
      await insert(paged.cloud.sql, "patients", { ...patient(base.branches.id, "En la nube"), document_id });
      // A backlog behind it: every page of the replay from the cloud has more after it.
      for (let i = 0; i < 60; i++)
        await insert(paged.cloud.sql, "patients", patient(base.branches.id, `Cola ${i}`));
      const pulled: number[] = [];
      const watching = small.progress$.subscribe((p) => {
        if (p.direction === "pull" && p.event === "pulled") pulled.push(p.pageRows);
      });
      const status = await small.syncNow();
      watching.unsubscribe();
      expect(status.blocked.map((b) => [b.direction, b.reason])).toContainEqual(["pull", "duplicate_record"]);
      expect(Math.max(...pulled)).toBe(16);
    } finally {
      await paged.close();
    }
  });
});
