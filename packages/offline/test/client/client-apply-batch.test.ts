import { randomUUID } from "node:crypto";
import { CvError, SYNCED_TABLES, type TableName } from "@centrovision/core";
import { asClinicPerson } from "@centrovision/testkit";
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
  remove,
  rowOf,
  type SqlNode,
  update,
  withLogin,
} from "@centrovision/testkit/nodes";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { PreparedWrites } from "../../src/client/client-apply.js";
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
/** The PC's login acting as its person, for calling the functions directly. */
let app: postgres.Sql;

beforeAll(async () => {
  [pc, server] = await Promise.all([createNode("pc"), createNode("clinic")]);
  const url = withLogin(server.url, await ensureLogin(APP, "centrovision_app"));
  person = await clinicPerson(server, { fullName: "Recepción Roma" });
  applier = createClientApplier({ postgres: { url, session: person.session } });
  app = postgres(url, { max: 1, onnotice: () => {}, connection: asClinicPerson(person.token) });
});
afterAll(async () => {
  await applier?.close();
  await app?.end();
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

/** What one apply call answered, in a shape two calls can be compared by. */
type Outcome = Omit<Awaited<ReturnType<ClientApplier["apply"]>>, "ignored">;

function sum(outcomes: readonly Outcome[]): Outcome {
  return {
    applied: outcomes.reduce((n, o) => n + o.applied, 0),
    skipped: outcomes.reduce((n, o) => n + o.skipped, 0),
    conflicts: outcomes.reduce((n, o) => n + o.conflicts, 0),
    rejected: outcomes.flatMap((o) => o.rejected),
    doubleBookings: outcomes.flatMap((o) => o.doubleBookings),
  };
}

/**
 * A drain's batch meeting every case a row can meet on the server, parents first and deletes
 * last: a new row, a replay, an older version the server has seen, a fast-forward, an edit of a
 * row the server deleted meanwhile, a concurrent edit, a delete, a stale delete, a booking
 * clashing with one the server holds and, with `stranger`, a row the person may not write. Each
 * row stands in its own position (`key`) so two such batches compare by position.
 */
async function everyCase({ stranger }: { stranger: boolean }) {
  const graph = await seeded();
  const mine = (label: string) => written("patients", patient(graph.branches.id, label));
  const [replayed, older, forwarded, deleted, contested, doomed, stale] = await Promise.all(
    ["Repetido", "Anterior", "Avance", "Borrado", "Disputa", "Baja", "Baja tardía"].map(mine),
  );
  const held = await written("appointments", booking(graph, replayed?.id as string, 900));
  const firsts = [replayed, older, forwarded, deleted, contested, doomed, stale, held] as ClientWrite[];
  expect(await applier.apply(firsts)).toMatchObject({ applied: 8, rejected: [] });
  const id = (write: ClientWrite | undefined) => write?.id as string;
  await update(pc.sql, "patients", id(older), { phone: "55 3333 0000" });
  expect(await applier.apply([await writeOf("patients", id(older))])).toMatchObject({ applied: 1 });
  await update(pc.sql, "patients", id(forwarded), { phone: "55 3333 1111" });
  await remove(server.sql, "patients", id(deleted));
  await update(pc.sql, "patients", id(deleted), { phone: "55 3333 2222" });
  await update(server.sql, "patients", id(contested), { phone: "55 3333 3333" });
  await update(pc.sql, "patients", id(contested), { first_name: "Josefa" });
  await update(server.sql, "patients", id(stale), { phone: "55 3333 4444" });
  const other = stranger ? await seeded({ admit: false }) : undefined;
  const writes: ClientWrite[] = [
    await mine("Nuevo"),
    replayed as ClientWrite,
    older as ClientWrite,
    await writeOf("patients", id(forwarded)),
    await writeOf("patients", id(deleted)),
    await writeOf("patients", id(contested)),
    ...(other ? [await written("patients", patient(other.branches.id, "Ajeno"))] : []),
    await written("appointments", { ...booking(graph, id(forwarded), 900), room_id: null }),
    {
      table: "patients",
      op: "delete",
      id: id(doomed),
      row: null,
      baseVersion: doomed?.row?.version as string,
    },
    { table: "patients", op: "delete", id: id(stale), row: null, baseVersion: stale?.row?.version as string },
  ];
  const key = new Map(writes.map((write, n) => [write.id, n]));
  /** An outcome with its rows named by position. */
  const keyed = (outcome: Outcome): Outcome => ({
    applied: outcome.applied,
    skipped: outcome.skipped,
    conflicts: outcome.conflicts,
    rejected: outcome.rejected.map((r) => ({ ...r, id: String(key.get(r.id)) })),
    doubleBookings: outcome.doubleBookings.map((d) => ({
      ...d,
      bookingId: String(key.get(d.bookingId)),
      otherId: d.otherId === held?.id ? "held" : d.otherId,
    })),
  });
  return { writes, keyed };
}

describe("a batch prepared ahead of its call (prepare, as the drain does)", () => {
  it("is checked and ordered as apply would: the call answers as for the list; a bad row is refused before anything is sent", async () => {
    const graph = await seeded();
    const row = patient(graph.branches.id, "Preparado");
    const parent = await written("patients", row);
    // Children first: prepare orders them.
    const writes = [
      await written("appointments", booking(graph, row.id, 700)),
      parent,
      {
        table: "patients",
        op: "delete",
        id: randomUUID(),
        row: null,
        baseVersion: null,
      } satisfies ClientWrite,
    ];
    const prepared = applier.prepare(writes);
    expect(prepared.size).toBe(2);
    expect(await applier.apply(prepared)).toMatchObject({ applied: 2, ignored: 1, rejected: [] });
    expect((await logOf([row.id, writes[0]?.id as string])).map((entry) => entry.table_name)).toEqual([
      "patients",
      "appointments",
    ]);

    const bad = { table: "patients", op: "upsert", id: randomUUID(), row: { id: "x" } } satisfies ClientWrite;
    expect(() => applier.prepare([bad])).toThrow(expect.objectContaining({ code: "invalid_input" }));
    const forged = applier.apply({ size: 1 } satisfies PreparedWrites);
    await expect(forged).rejects.toBeInstanceOf(CvError);
    await expect(forged).rejects.toMatchObject({ code: "invalid_input" });
  });
});

describe("a batch answers as row by row", () => {
  it.each([false, true])(
    "the same outcome for every row, one call or one call per row (a refused row among them: %s); a replay applies nothing",
    async (stranger) => {
      const batch = await everyCase({ stranger });
      const oneCall = batch.keyed(await applier.apply(batch.writes));
      const single = await everyCase({ stranger });
      const perRow: Outcome[] = [];
      for (const write of single.writes) perRow.push(await applier.apply([write]));
      expect(oneCall).toEqual(single.keyed(sum(perRow)));
      expect(oneCall).toEqual({
        applied: 4,
        skipped: 2,
        conflicts: 2,
        rejected: [
          ...(stranger
            ? [expect.objectContaining({ table: "patients", id: "6", code: "unauthorized" })]
            : []),
          expect.objectContaining({ table: "patients", id: stranger ? "9" : "8", code: "conflict" }),
        ],
        doubleBookings: [{ bookingId: stranger ? "7" : "6", otherId: "held", shared: ["doctor_id"] }],
      });

      const ids = batch.writes.map((w) => w.id);
      const logged = await logOf(ids);
      const replay = batch.keyed(await applier.apply(batch.writes));
      expect(replay).toMatchObject({ applied: 0, skipped: 8, conflicts: 0, doubleBookings: [] });
      expect(replay.rejected).toEqual(oneCall.rejected);
      expect(await logOf(ids)).toEqual(logged);
    },
  );
});

describe("cv_client_seen_batch", () => {
  it("answers each row as cv_client_seen does, and no more: deleted only to a caller naming a version the row had", async () => {
    const graph = await seeded();
    const [node] = await server.sql<{ node_id: string }[]>`select node_id from cv_sync.node`;
    const edited = patient(graph.branches.id, "Editado");
    await insert(server.sql, "patients", edited);
    const first = (await rowOf(server.sql, "patients", edited.id))?.version as string;
    await update(server.sql, "patients", edited.id, { phone: "55 4444 0000" });
    const second = (await rowOf(server.sql, "patients", edited.id))?.version as string;
    const gone = patient(graph.branches.id, "Borrado");
    await insert(server.sql, "patients", gone);
    const held = (await rowOf(server.sql, "patients", gone.id))?.version as string;
    await remove(server.sql, "patients", gone.id);
    // A version kept only by a conflict (it lost there), and one an initial sync copied (never logged).
    const [contested, lost, copied, copiedVersion] = [randomUUID(), randomUUID(), randomUUID(), randomUUID()];
    await server.sql`
      insert into cv_sync.conflicts (id, table_name, row_id, local_version, remote_version, winner, policy, reason)
      values (${randomUUID()}, 'patients', ${contested}, ${randomUUID()}, ${lost}, 'local', 'lww', 'test')`;
    await server.sql`
      insert into cv_sync.row_state (table_name, row_id, version, hlc, origin)
      values ('patients', ${copied}, ${copiedVersion}, cv_sync.synthetic_hlc(now(), ${node?.node_id as string}), ${node?.node_id as string})`;
    const asks: [string, string, string, string | null, string][] = [
      ["patients", edited.id, first, null, "known"],
      ["patients", edited.id, second, first, "known"],
      ["patients", edited.id, randomUUID(), second, "unseen"],
      ["appointments", edited.id, second, null, "unseen"],
      ["patients", gone.id, randomUUID(), held, "deleted"],
      ["patients", gone.id, held, held, "known"],
      ["patients", gone.id, randomUUID(), null, "unseen"],
      ["patients", gone.id, randomUUID(), randomUUID(), "unseen"],
      ["patients", contested, lost, null, "known"],
      ["patients", copied, copiedVersion, null, "known"],
      ["patients", randomUUID(), randomUUID(), null, "unseen"],
    ];
    const [batch] = await app<{ seen: string[] }[]>`
      select public.cv_client_seen_batch(${asks.map((a) => a[0])}::text[], ${asks.map((a) => a[1])}::uuid[],
        ${asks.map((a) => a[2])}::uuid[], ${asks.map((a) => a[3])}::uuid[]) as seen`;
    const single: string[] = [];
    for (const [table, row, version, base] of asks) {
      const [one] = await app<
        { seen: string }[]
      >`select public.cv_client_seen(${table}, ${row}, ${version}, ${base}) as seen`;
      single.push(one?.seen as string);
    }
    expect(batch?.seen).toEqual(asks.map((a) => a[4]));
    expect(batch?.seen).toEqual(single);
  });

  it("refuses a table that is not synced and arrays of different lengths (CV005)", async () => {
    const failure = (statement: string) =>
      app.unsafe(statement).then(
        () => undefined,
        (error: { code?: string; message?: string }) => [error.code, error.message],
      );
    const id = randomUUID();
    expect(
      await failure(
        `select cv_client_seen_batch('{patients,cv_keys}', '{${id},${id}}', '{${id},${id}}', '{NULL,NULL}')`,
      ),
    ).toEqual(["CV005", "cv_keys is not a synced table"]);
    expect(await failure(`select cv_client_seen_batch('{patients}', '{}', '{${id}}', '{NULL}')`)).toEqual([
      "CV005",
      expect.stringContaining("four arrays of one length"),
    ]);
    const [empty] = await app<
      { seen: string[] }[]
    >`select cv_client_seen_batch('{}', '{}', '{}', '{}') as seen`;
    expect(empty?.seen).toEqual([]);
  });
});
