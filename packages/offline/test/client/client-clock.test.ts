import { isSyncError } from "@centrovision/sync-engine";
import {
  type ClinicPerson,
  type Consultation,
  clinicPerson,
  consultation,
  createNode,
  ensureLogin,
  insert,
  rowOf,
  type SqlNode,
  update,
  withLogin,
} from "@centrovision/testkit/nodes";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ClientApplier, type ClientWrite, createClientApplier } from "../../src/index.js";

/*
 * A PC's timestamps on the clinic server (sql/0002, sql/0010): an insert is stamped with the
 * server's time, and a write whose updated_at would order a settled conflict is refused (CV009),
 * that row alone, when it is ahead of the server's clock plus the allowed skew — the "9999" clock
 * poisoning.
 * Applied as a PC really does: a centrovision_app login acting as a signed-in person.
 */

const APP = { user: "cv_client_clock_test", password: "client-clock-test-password" };
const CONFIGURATION = ["branches", "rooms", "profiles"] as const;
let server: SqlNode;
/** The PC's tier: rows are written there first, as the PC got them back. */
let pc: SqlNode;
let person: ClinicPerson;
let applier: ClientApplier;

beforeAll(async () => {
  [server, pc] = await Promise.all([createNode("clinic"), createNode("pc")]);
  const url = withLogin(server.url, await ensureLogin(APP, "centrovision_app"));
  person = await clinicPerson(server, { fullName: "Recepción Roma" });
  applier = createClientApplier({ postgres: { url, session: person.session } });
});
afterAll(async () => {
  await applier?.close();
  await Promise.all([server?.drop(), pc?.drop()]);
});

/** A branch's configuration on the server (as the sync brought it), the person working there. */
async function seeded(): Promise<Consultation> {
  const graph = consultation();
  await server.sql.begin(async (tx) => {
    for (const table of CONFIGURATION) await insert(tx, table, graph[table]);
  });
  await person.admit(graph.branches.id);
  await pc.sql.begin(async (tx) => {
    for (const table of CONFIGURATION) await insert(tx, table, graph[table]);
  });
  return graph;
}

/** A new patient of `graph`'s branch as the PC's tier stored it. */
async function pcPatient(graph: Consultation): Promise<Record<string, unknown>> {
  const row = { ...consultation().patients, branch_id: graph.branches.id };
  await insert(pc.sql, "patients", row);
  return (await rowOf(pc.sql, "patients", row.id)) as Record<string, unknown>;
}

/** The patient as the PC wrote it: `row` over the server's current row, a new version based on `base`. */
function pcEdit(stored: Record<string, unknown>, row: Record<string, unknown>): ClientWrite {
  return {
    table: "patients",
    op: "upsert",
    id: stored.id as string,
    row: { ...stored, ...row, version: crypto.randomUUID(), base_version: stored.version },
  };
}

async function floorAndState(id: string) {
  const [found] = await server.sql`
    select n.hlc_floor::text as floor, s.version, s.hlc from cv_sync.node n
    left join cv_sync.row_state s on s.table_name = 'patients' and s.row_id = ${id}`;
  return found;
}

describe("a PC's timestamps", () => {
  it("are replaced by the server's on insert", async () => {
    const graph = await seeded();
    const future = "2099-01-01T00:00:00.000Z";
    const stamped = await pcPatient(graph);
    const id = stamped.id as string;
    const row = { ...stamped, created_at: future, updated_at: future };
    expect(await applier.apply([{ table: "patients", op: "upsert", id, row }])).toMatchObject({
      applied: 1,
      rejected: [],
    });
    const stored = await rowOf(server.sql, "patients", id);
    for (const at of [stored?.created_at, stored?.updated_at])
      expect(Math.abs(Date.parse(String(at)) - Date.now())).toBeLessThan(60_000);
  });

  it("refuse a settled edit stamped in the year 9999 alone: that row rejected, its floor and HLC unchanged, the rest applied", async () => {
    const graph = await seeded();
    await insert(server.sql, "patients", graph.patients);
    const stored = (await rowOf(server.sql, "patients", graph.patients.id)) as Record<string, unknown>;
    // The server changed the patient meanwhile: the PC's edit must be settled, by its updated_at.
    await update(server.sql, "patients", graph.patients.id, { phone: "55 2222 3333" });
    const before = await floorAndState(graph.patients.id);
    const current = await rowOf(server.sql, "patients", graph.patients.id);

    const newcomer = await pcPatient(graph);
    const fine: ClientWrite = { table: "patients", op: "upsert", id: newcomer.id as string, row: newcomer };
    const poisoned = pcEdit(stored, { phone: "55 9999 9999", updated_at: "9999-12-31T23:59:59.999Z" });
    // The stamp is in the PC's row: failing the whole call, as before, held every other write of
    // its outbox back, drain after drain, whatever became of the PC's clock.
    const result = await applier.apply([fine, poisoned]);
    expect(result).toMatchObject({ applied: 1, conflicts: 0 });
    expect(result.rejected).toEqual([
      {
        table: "patients",
        id: graph.patients.id,
        code: "invalid_input",
        message:
          "this PC saved the patients row at a time later than this server's clock allows (the PC's clock was " +
          "ahead, SQLSTATE CV009); set the PC's date and time right, then edit the record again or discard the change",
      },
    ]);
    expect(await floorAndState(graph.patients.id)).toEqual(before);
    expect(await rowOf(server.sql, "patients", graph.patients.id)).toEqual(current);
    expect(await rowOf(server.sql, "patients", newcomer.id as string)).toBeDefined();
  });

  it("refuse an opening of a record dated in the year 9999 (clock_ahead), and record one dated now", async () => {
    const graph = await seeded();
    await insert(server.sql, "patients", graph.patients);
    const error = await applier
      .recordOpened(graph.patients.id, new Date("9999-12-31T23:59:59.999Z"))
      .catch((e: unknown) => e);
    expect(isSyncError(error, "clock_ahead")).toBe(true);
    expect((error as Error).message).toMatch(
      /^.*the time this PC opened the record is \d+ s ahead of this server's clock/,
    );
    const opened = async () => {
      const [found] = await server.sql<{ n: number }[]>`
        select count(*)::int as n from cv_audit.events where patient_id = ${graph.patients.id} and action = 'open'`;
      return found?.n;
    };
    expect(await opened()).toBe(0);
    await applier.recordOpened(graph.patients.id, new Date());
    expect(await opened()).toBe(1);
  });
});
