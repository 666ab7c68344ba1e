import { randomUUID } from "node:crypto";
import { SYNCED_TABLES, type TableName } from "@centrovision/core";
import {
  type ClinicPerson,
  type Consultation,
  clinicPerson,
  consultation,
  createNode,
  ensureLogin,
  insert,
  insertConsultation,
  patient,
  type Row,
  rowOf,
  type SqlNode,
  update,
  withLogin,
} from "@centrovision/testkit/nodes";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ClientApplier, type ClientWrite, createClientApplier } from "../../src/index.js";

/*
 * cv_client_apply on batches as large as a drain sends: each run of one table's changes is written
 * by one statement where it can be, and row by row where a row needs it. These check that the
 * outcome is the one row by row gave: parents first, each refusal reported for its own row,
 * idempotent on replay, a row twice in one batch, a conflict among fast-forwards, and a double
 * booking within the batch reported once. Rows are written on a scratch node (the "PC's tier")
 * first, as the PC would have got them back; the person acts through a centrovision_app login.
 */

const APP = { user: "cv_client_batch_test", password: "client-batch-test-password" };
let pc: SqlNode;
let server: SqlNode;
let applier: ClientApplier;
let person: ClinicPerson;

beforeAll(async () => {
  [pc, server] = await Promise.all([createNode("pc"), createNode("clinic")]);
  const url = withLogin(server.url, await ensureLogin(APP, "centrovision_app"));
  person = await clinicPerson(server, { fullName: "Recepción Roma" });
  applier = createClientApplier({ postgres: { url, session: person.session } });
});
afterAll(async () => {
  await applier?.close();
  await Promise.all([pc?.drop(), server?.drop()]);
});

/** A consultation on the PC's tier; its branch's configuration on the server, the person working there unless `admit` is false. */
async function seeded({ admit = true } = {}): Promise<Consultation> {
  const graph = consultation();
  await insertConsultation(pc.sql, graph);
  await server.sql.begin(async (tx) => {
    for (const table of ["branches", "rooms", "profiles", "user_roles", "user_branches"] as const) {
      await insert(tx, table, graph[table]);
    }
  });
  if (admit) await person.admit(graph.branches.id);
  return graph;
}

/** `row` as the PC's tier stored it, as a write. */
async function writeOf(table: TableName, id: string): Promise<ClientWrite> {
  return { table, op: "upsert", id, row: (await rowOf(pc.sql, table, id)) ?? null };
}

/** Inserts `row` on the PC's tier and returns it as a write. */
async function written(table: TableName, row: Row): Promise<ClientWrite> {
  await insert(pc.sql, table, row);
  return writeOf(table, row.id);
}

/** A booking of `graph`'s doctor and room, `hour` hours after 2031-01-06 08:00 UTC, 30 minutes long. */
function booking(graph: Consultation, patientId: string, hour: number): Row {
  const start = Date.UTC(2031, 0, 6, 8) + hour * 3_600_000;
  return {
    id: randomUUID(),
    branch_id: graph.branches.id,
    room_id: graph.rooms.id,
    patient_id: patientId,
    doctor_id: graph.profiles.id,
    starts_at: new Date(start).toISOString(),
    ends_at: new Date(start + 1_800_000).toISOString(),
    reason: "Revisión",
    type: "follow_up",
  };
}

async function logOf(ids: readonly string[]) {
  return server.sql<{ table_name: string; row_id: string }[]>`
    select table_name, row_id from cv_sync.change_log where row_id = any(${ids}::uuid[]) order by seq`;
}

describe("cv_client_apply on a drain-sized batch", () => {
  it("applies parents first with a refused row among accepted ones; replaying the batch changes nothing", async () => {
    const mine = await seeded();
    const theirs = await seeded({ admit: false });
    const writes: ClientWrite[] = [];
    for (let n = 0; n < 120; n++) {
      const row = patient(mine.branches.id, `Paciente ${n}`);
      writes.push(await written("patients", row));
      writes.push(await written("appointments", booking(mine, row.id, n)));
      // Another branch's patient in the middle of the run: refused, the rest of the run applies.
      if (n === 60) writes.push(await written("patients", patient(theirs.branches.id, "Ajeno")));
    }
    const stranger = writes.find((w) => w.row?.branch_id === theirs.branches.id) as ClientWrite;
    // Sent children before parents: the applier orders them, the server keeps that order.
    const result = await applier.apply(writes.toReversed());
    expect(result).toMatchObject({ applied: 240, skipped: 0, conflicts: 0, doubleBookings: [] });
    expect(result.rejected).toEqual([
      expect.objectContaining({ table: "patients", id: stranger.id, code: "unauthorized" }),
    ]);
    const ids = writes.map((w) => w.id);
    const log = await logOf(ids);
    expect(log).toHaveLength(240);
    const order = log.map((entry) => SYNCED_TABLES.indexOf(entry.table_name as TableName));
    expect(order).toEqual(order.toSorted((a, b) => a - b));

    const replay = await applier.apply(writes);
    expect(replay).toMatchObject({ applied: 0, skipped: 240, conflicts: 0 });
    expect(replay.rejected.map((r) => r.id)).toEqual([stranger.id]);
    expect(await logOf(ids)).toHaveLength(240);
    expect(await rowOf(server.sql, "patients", stranger.id)).toBeUndefined();
  });

  it("applies a row sent twice in one batch as row by row: the second change fast-forwards the first", async () => {
    const graph = await seeded();
    const first = await written("patients", patient(graph.branches.id, "Dos veces"));
    await update(pc.sql, "patients", first.id, { phone: "55 1111 0000" });
    const second = await writeOf("patients", first.id);
    expect(second.row?.base_version).toBe(first.row?.version);
    expect(await applier.apply([first, second])).toMatchObject({ applied: 2, conflicts: 0, rejected: [] });
    expect(await rowOf(server.sql, "patients", first.id)).toMatchObject({
      phone: "55 1111 0000",
      version: second.row?.version,
    });
    expect(await logOf([first.id])).toHaveLength(2);
  });

  it("settles a concurrent server edit among fast-forwards of the same table", async () => {
    const graph = await seeded();
    const rows = [0, 1, 2].map((n) => patient(graph.branches.id, `Edición ${n}`));
    const firsts = await Promise.all(rows.map((row) => written("patients", row)));
    expect(await applier.apply(firsts)).toMatchObject({ applied: 3 });
    const contested = rows[1] as Row;
    await update(server.sql, "patients", contested.id, { phone: "55 2222 0000" });
    for (const row of rows) await update(pc.sql, "patients", row.id, { first_name: "Josefa" });
    const edits = await Promise.all(rows.map((row) => writeOf("patients", row.id)));
    expect(await applier.apply(edits)).toMatchObject({ applied: 2, conflicts: 1, rejected: [] });
    // Different columns merge: the PC's name and the server's phone.
    expect(await rowOf(server.sql, "patients", contested.id)).toMatchObject({
      first_name: "Josefa",
      phone: "55 2222 0000",
    });
    for (const edit of [edits[0], edits[2]]) {
      expect(await rowOf(server.sql, "patients", edit?.id as string)).toMatchObject({
        version: edit?.row?.version,
      });
    }
  });

  it("reports a clash between two bookings of one batch once, by the later one", async () => {
    const graph = await seeded();
    const first = booking(graph, graph.patients.id, 500);
    const other = await written("patients", patient(graph.branches.id, "Empalme"));
    const second = { ...booking(graph, other.id, 500), room_id: null };
    const writes = [
      await writeOf("patients", graph.patients.id),
      other,
      await written("appointments", first),
      await written("appointments", second),
    ];
    const result = await applier.apply(writes);
    expect(result).toMatchObject({ applied: 4, rejected: [] });
    expect(result.doubleBookings).toEqual([
      { bookingId: second.id, otherId: first.id, shared: ["doctor_id"] },
    ]);
  });
});
