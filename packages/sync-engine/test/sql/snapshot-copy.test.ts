import { SYNCED_TABLES } from "@centrovision/core";
import {
  consultation,
  createNode,
  failureCode,
  insertConsultation,
  patient,
  rowOf,
  type SqlNode,
} from "@centrovision/testkit/nodes";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  applySnapshot,
  conflicts,
  copyTables,
  expectConverged,
  json,
  type SnapshotPage,
  snapshotPage,
  snapshotProgress,
  sync,
  UNUSUAL_TEXT,
} from "../support/sql-sync.js";

/*
 * The initial sync's pages as row texts (sql/functions/06_snapshot.sql): every value read back
 * exactly, a forged page refused whole, a first copy written set-based and anything else through
 * the ordinary apply. Fresh nodes per test: an empty clinic.
 */

type Page = Omit<SnapshotPage, "rows"> & {
  format: string;
  columns: string[];
  rows: [string, string, string, string][];
};

let cloud: SqlNode;
let clinicNode: SqlNode;
beforeEach(async () => {
  [cloud, clinicNode] = await Promise.all([createNode("cloud"), createNode("clinic")]);
});
afterEach(async () => {
  await Promise.all([cloud?.drop(), clinicNode?.drop()]);
});

const page = async (table: string, after: string | null, limit: number) =>
  (await snapshotPage(cloud, table, after, limit)) as Page;

async function rowsOf(node: SqlNode, table: string): Promise<number> {
  const [found] = await node.sql.unsafe<{ n: number }[]>(`select count(*)::int as n from ${table}`);
  return found?.n ?? 0;
}

/** What the clinic knows of every row: the state the catch-up and later conflicts are judged on. */
async function rowStates(node: SqlNode) {
  return node.sql`
    select table_name, row_id, version, hlc, origin, deleted from cv_sync.row_state order by table_name, row_id`;
}

describe("initial sync pages as row texts", () => {
  it("reads every value back exactly, whatever either session's date, interval, float and time zone settings", async () => {
    const rows = consultation();
    rows.patients.notes = UNUSUAL_TEXT;
    rows.patients.address = "\\";
    rows.patients.second_last_name = null;
    rows.patients.birth_date = "1900-01-31";
    rows.appointments.starts_at = "2025-03-13T09:00:00.123-06:00";
    rows.appointments.ends_at = "2025-03-13T21:30:00.999+05:45";
    rows.appointments.notes = '"';
    rows.exam_eye.refraction_sphere = -20.0;
    rows.exam_eye.refraction_cylinder = 0;
    rows.exam_eye.iop_mmhg = null;
    rows.exam_eye.uncorrected_va_logmar = -0.3;
    await insertConsultation(cloud.sql, rows);
    // Each side's own, and different: a text written under one and read under the other would
    // swap day and month, or shift a time.
    const oddSession = async (node: SqlNode, settings: Record<string, string>) => {
      const reserved = await node.sql.reserve();
      for (const [name, value] of Object.entries(settings))
        await reserved.unsafe("select set_config($1, $2, false)", [name, value]);
      return reserved;
    };
    const [cloudSession, clinicSession] = await Promise.all([
      oddSession(cloud, {
        DateStyle: "SQL, DMY",
        IntervalStyle: "sql_standard",
        TimeZone: "Pacific/Chatham",
        extra_float_digits: "-15",
      }),
      oddSession(clinicNode, {
        DateStyle: "SQL, MDY",
        IntervalStyle: "iso_8601",
        TimeZone: "America/Mexico_City",
      }),
    ]);
    try {
      const copied = await copyTables(
        { ...cloud, sql: cloudSession as never },
        { ...clinicNode, sql: clinicSession as never },
        { limit: 1 },
      );
      expect(copied).toBe(true);
    } finally {
      for (const session of [cloudSession, clinicSession]) {
        await session`reset all`;
        session.release();
      }
    }
    await expectConverged(cloud, clinicNode);
    const exact = async (node: SqlNode) =>
      node.sql`select p.notes, p.address, p.second_last_name, a.starts_at::text as starts, a.ends_at::text as ends,
        e.refraction_sphere::text as sphere, e.iop_mmhg, e.uncorrected_va_logmar::text as va
        from patients p join appointments a on a.patient_id = p.id join exam_eye e on true`;
    expect(await exact(clinicNode)).toEqual(await exact(cloud));
    expect((await exact(clinicNode))[0]).toMatchObject({ notes: UNUSUAL_TEXT, address: "\\" });
    // Copied rows are state, not changes; the clinic knows each by the cloud's version and HLC.
    expect(await rowsOf(clinicNode, "cv_sync.change_log")).toBe(0);
    expect(await rowStates(clinicNode)).toEqual(await rowStates(cloud));
  });

  it("sends the columns once, and each row's id, version and HLC beside its text", async () => {
    await insertConsultation(cloud.sql, consultation());
    const branches = await page("branches", null, 10);
    expect(branches).toMatchObject({ format: "row_text", table: "branches", has_more: false });
    const [columns] = await cloud.sql<{ names: string[] }[]>`
      select array_agg(attname::text order by attnum) as names from pg_attribute
      where attrelid = 'public.branches'::regclass and attnum > 0 and not attisdropped`;
    expect(branches.columns).toEqual(columns?.names);
    const [row] = branches.rows;
    const [stored] = await cloud.sql<{ id: string; version: string; text: string; hlc: string }[]>`
      select b.id, b.version, b::text as text, s.hlc from branches b
      join cv_sync.row_state s on s.table_name = 'branches' and s.row_id = b.id`;
    expect(row).toEqual([stored?.id, stored?.version, stored?.hlc, stored?.text]);
  });
});

describe("a forged or damaged page", () => {
  /** Applies a changed first page of `table`: refused with `code`, nothing written, the copy where it was. */
  async function refused(table: string, change: (page: Page) => Page, code: string) {
    const good = await page(table, null, 10);
    expect(await failureCode(() => applySnapshot(clinicNode, cloud, change(structuredClone(good))))).toBe(
      code,
    );
    for (const name of SYNCED_TABLES) expect(await rowsOf(clinicNode, name), name).toBe(0);
    expect(await rowsOf(clinicNode, "cv_sync.row_state")).toBe(0);
    expect(await snapshotProgress(clinicNode, cloud)).toBeNull();
  }

  beforeEach(async () => {
    const first = consultation();
    await insertConsultation(cloud.sql, first);
    await cloud.sql`insert into branches ${cloud.sql({ ...consultation().branches })}`;
    await cloud.sql`insert into patients ${cloud.sql(patient(first.branches.id, "Segunda"))}`;
  });

  it("is refused for another column order, or other columns (CV002)", async () => {
    await refused("branches", (p) => ({ ...p, columns: [...p.columns].reverse() }), "CV002");
    await refused("branches", (p) => ({ ...p, columns: p.columns.slice(1) }), "CV002");
    await refused("branches", (p) => ({ ...p, columns: [...p.columns, "extra"] }), "CV002");
  });

  it("is refused in the format of an older release, or with items not [id, version, hlc, text] (CV005)", async () => {
    await refused("branches", ({ format: _, ...p }) => p as Page, "CV005");
    await refused(
      "branches",
      (p) => ({ ...p, rows: p.rows.map(([id, , hlc, text]) => ({ row: { id, text }, hlc })) as never }),
      "CV005",
    );
    await refused(
      "branches",
      (p) => ({ ...p, rows: p.rows.map(([id, version, hlc]) => [id, version, hlc]) as never }),
      "CV005",
    );
    await refused(
      "branches",
      (p) => ({ ...p, rows: p.rows.map(([id, version, , text]) => [id, version, "yesterday", text]) }),
      "CV005",
    );
    await refused(
      "branches",
      (p) => ({ ...p, rows: p.rows.map(([id, , hlc, text]) => [id, "v2", hlc, text]) }),
      "CV005",
    );
    // Read as uuids and times, but not in the one form each is stored and compared in.
    await refused(
      "branches",
      (p) => ({
        ...p,
        rows: p.rows.map(([id, version, hlc, text]) => [id.toUpperCase(), version, hlc, text]),
      }),
      "CV005",
    );
    await refused(
      "branches",
      (p) => ({
        ...p,
        rows: p.rows.map(([id, version, hlc, text]) => [id, version, `+${hlc.slice(1)}`, text]),
      }),
      "CV005",
    );
    await refused(
      "branches",
      (p) => ({
        ...p,
        rows: p.rows.map(([id, version, hlc, text]) => [id, version, hlc.replace(/\.(\d)/, " $1"), text]),
      }),
      "CV005",
    );
    await refused(
      "branches",
      (p) => ({
        ...p,
        rows: p.rows.map(([id, version, hlc, text]) => [id, version, hlc.toUpperCase(), text]),
      }),
      "CV005",
    );
    // An HLC of 63 bytes, two of them one character: its digits no longer where an HLC has them.
    await refused(
      "branches",
      (p) => ({
        ...p,
        rows: p.rows.map(([id, version, hlc, text]) => [id, version, `é${hlc.slice(2)}`, text]),
      }),
      "CV005",
    );
    await refused(
      "branches",
      (p) => ({ ...p, rows: p.rows.map(([, version, hlc, text]) => [5, version, hlc, text]) as never }),
      "CV005",
    );
  });

  it("is refused when its rows leave its id range, repeat an id, or name another id or version in their text (CV005)", async () => {
    const last = (p: Page) => p.rows.at(-1) as [string, string, string, string];
    await refused("branches", (p) => ({ ...p, last_id: p.rows[0]?.[0] ?? null }), "CV005");
    await refused("branches", (p) => ({ ...p, rows: [...p.rows, last(p)] }), "CV005");
    await refused(
      "branches",
      (p) => ({ ...p, rows: p.rows.map(([, version, hlc, text]) => [last(p)[0], version, hlc, text]) }),
      "CV005",
    );
    await refused(
      "branches",
      (p) => ({
        ...p,
        rows: p.rows.map(([id, , hlc, text]) => [id, "00000000-0000-4000-8000-000000000000", hlc, text]),
      }),
      "CV005",
    );
    // The id beside it in range, the text's id another: still refused, even on the set-based first copy.
    await refused(
      "branches",
      (p) => ({
        ...p,
        rows: p.rows.map(([id, version, hlc, text]) => [
          id,
          version,
          hlc,
          text.replace(id, "00000000-0000-4000-8000-000000000001"),
        ]),
      }),
      "CV005",
    );
  });

  it("is refused when a text is not a row of its table: another table's, a wrong type, a missing column (CV005)", async () => {
    const rooms = await page("rooms", null, 10);
    await refused(
      "branches",
      (p) => ({
        ...p,
        rows: rooms.rows.map(([id, version, hlc, text]) => [id, version, hlc, text]),
        last_id: rooms.last_id,
      }),
      "CV005",
    );
    await refused(
      "branches",
      (p) => ({ ...p, rows: p.rows.map(([id, v, h, text]) => [id, v, h, text.replace(/\)$/, ",x)")]) }),
      "CV005",
    );
    await refused(
      "branches",
      (p) => ({ ...p, rows: p.rows.map(([id, v, h, text]) => [id, v, h, text.replace(/,[^,]*\)$/, ")")]) }),
      "CV005",
    );
    await refused(
      "branches",
      (p) => ({ ...p, rows: p.rows.map(([id, v, h, text]) => [id, v, h, text.replace(v, "no-es-uuid")]) }),
      "CV005",
    );
    await refused(
      "branches",
      (p) => ({
        ...p,
        rows: p.rows.map(([id, v, h, text]) => [id, v, h, text.replace(/^\(([^,]*),"[^"]*"/, "($1,ayer")]),
      }),
      "CV005",
    );
  });

  it("never quotes a row's value in its error", async () => {
    const good = await page("branches", null, 10);
    const secret = "Paciente-Secreto-Garcia";
    const forged = {
      ...good,
      rows: good.rows.map(([id, v, h, text]) => [id, v, h, text.replace(/^\(([^,]*),/, `(${secret},`)]),
    };
    const error = await applySnapshot(clinicNode, cloud, forged).then(
      () => undefined,
      (e: { code?: string; message?: string; detail?: string }) => e,
    );
    expect(error?.code).toBe("CV005");
    expect(`${error?.message} ${error?.detail ?? ""}`).not.toContain(secret);
  });
});

describe("the first copy and the ordinary apply", () => {
  it("writes a page over rows the clinic already holds through the ordinary apply, and converges", async () => {
    const rows = consultation();
    await insertConsultation(cloud.sql, rows);
    for (let n = 0; n < 6; n++)
      await cloud.sql`insert into patients ${cloud.sql(patient(rows.branches.id, `P${n}`))}`;
    // The clinic holds one of the branches already (as an earlier apply left it): the page over
    // it cannot be written set-based and goes through the ordinary apply; the others need not.
    const copyFirst = async (table: (typeof SYNCED_TABLES)[number]) => {
      const [found] = await cloud.sql.unsafe<{ r: Record<string, unknown> }[]>(
        `select to_jsonb(t) as r from ${table} t order by id limit 1`,
      );
      return found?.r;
    };
    const seen = await copyFirst("branches");
    await clinicNode.sql.begin(async (tx) => {
      await tx`select cv_sync.begin_apply(${cloud.id}::uuid)`;
      await tx`insert into branches select * from jsonb_populate_record(null::branches, ${json(tx, seen)})`;
      await tx`select cv_sync.end_apply()`;
    });
    expect(await copyTables(cloud, clinicNode, { limit: 3 })).toBe(true);
    await sync(cloud, clinicNode);
    await expectConverged(cloud, clinicNode);
    expect(await conflicts(clinicNode, null)).toEqual([]);
  });

  it("resumes after a crash mid-copy where the clinic says it stands; a page that failed wrote nothing", async () => {
    const rows = consultation();
    await insertConsultation(cloud.sql, rows);
    for (let n = 0; n < 7; n++)
      await cloud.sql`insert into patients ${cloud.sql(patient(rows.branches.id, `P${n}`))}`;
    expect(await copyTables(cloud, clinicNode, { limit: 3, maxPages: 6 })).toBe(false);
    const at = await snapshotProgress(clinicNode, cloud);
    expect(at).toMatchObject({ table: "patients", done: false });
    const before = await rowsOf(clinicNode, "patients");
    // The next page arrives damaged (its last text cut short): refused whole.
    const next = (await page("patients", at?.after_id ?? null, 3)) as Page;
    const damaged = {
      ...next,
      rows: next.rows.map((r, i) => (i === next.rows.length - 1 ? [r[0], r[1], r[2], r[3].slice(0, 20)] : r)),
    };
    expect(await failureCode(() => applySnapshot(clinicNode, cloud, damaged as Page))).toBe("CV005");
    expect(await rowsOf(clinicNode, "patients")).toBe(before);
    expect(await snapshotProgress(clinicNode, cloud)).toEqual(at);
    // A page read again after the crash, already written: a duplicate, nothing changes.
    expect(await applySnapshot(clinicNode, cloud, await page("branches", null, 3))).toMatchObject({
      status: "duplicate",
    });
    expect(await copyTables(cloud, clinicNode, { limit: 3 })).toBe(true);
    await sync(cloud, clinicNode);
    await expectConverged(cloud, clinicNode);
    expect(await rowOf(clinicNode.sql, "patients", rows.patients.id)).toBeDefined();
  });

  it("refuses a page stamped ahead of the clinic's clock on the first copy too (CV009)", async () => {
    const rows = consultation();
    await insertConsultation(cloud.sql, rows);
    const good = await page("branches", null, 10);
    const ahead = {
      ...good,
      rows: good.rows.map(([id, v, h, text]) => [
        id,
        v,
        h,
        text.replace(/^\(([^,]*),"[^"]*","[^"]*"/, '($1,"2999-01-01 00:00:00+00","2999-01-01 00:00:00+00"'),
      ]),
    };
    expect(await failureCode(() => applySnapshot(clinicNode, cloud, ahead as Page))).toBe("CV009");
    expect(await rowsOf(clinicNode, "branches")).toBe(0);
  });
});

describe("the first copy in replica mode (where the owner may set it, as here)", () => {
  /** Copies every table before appointments (one page each); returns the appointments page. */
  async function upToAppointments() {
    const index = SYNCED_TABLES.indexOf("appointments");
    expect(await copyTables(cloud, clinicNode, { limit: 100, maxPages: index })).toBe(false);
    expect(await snapshotProgress(clinicNode, cloud)).toMatchObject({ table: "appointments" });
    return page("appointments", null, 100);
  }

  it("locks the parents it references as a foreign key's check does, and leaves the session as it was", async () => {
    const rows = consultation();
    await insertConsultation(cloud.sql, rows);
    const appointments = await upToAppointments();
    const copying = await clinicNode.sql.reserve();
    try {
      await copying`begin`;
      await applySnapshot({ ...clinicNode, sql: copying as never }, cloud, appointments);
      const [mode] = await copying<
        { role: string }[]
      >`select current_setting('session_replication_role') as role`;
      expect(mode?.role).toBe("origin");
      // Not yet committed, the copied appointment is invisible to another session: only the
      // lock keeps its patient from being deleted under it.
      const deleted = clinicNode.sql.begin(async (tx) => {
        await tx`set local lock_timeout = '300ms'`;
        await tx`delete from patients where id = ${rows.patients.id}`;
      });
      expect(await failureCode(() => deleted)).toBe("55P03");
      await copying`commit`;
    } finally {
      copying.release();
    }
    expect(await rowOf(clinicNode.sql, "appointments", rows.appointments.id)).toBeDefined();
  });

  it("leaves out a row whose parent is missing, as the foreign key would, and writes the rest", async () => {
    const rows = consultation();
    await insertConsultation(cloud.sql, rows);
    const appointments = await upToAppointments();
    // Created after the clinic copied patients: the new appointment's patient is not there yet.
    const other = patient(rows.branches.id, "Sin-Copia");
    const late = { ...rows.appointments, id: "ffffffff-ffff-4fff-8fff-ffffffffffff", patient_id: other.id };
    await cloud.sql`insert into patients ${cloud.sql(other)}`;
    await cloud.sql`insert into appointments ${cloud.sql(late)}`;
    const withLate = await page("appointments", null, 100);
    expect(withLate.rows).toHaveLength(appointments.rows.length + 1);
    expect(await applySnapshot(clinicNode, cloud, withLate)).toMatchObject({
      status: "applied",
      deferred: 1,
    });
    expect(await rowOf(clinicNode.sql, "appointments", rows.appointments.id)).toBeDefined();
    expect(await rowOf(clinicNode.sql, "appointments", late.id)).toBeUndefined();
    expect(await rowOf(clinicNode.sql, "patients", other.id)).toBeUndefined();
    // The catch-up brings the patient, then the appointment.
    expect(await copyTables(cloud, clinicNode, { limit: 100 })).toBe(true);
    await sync(cloud, clinicNode);
    await expectConverged(cloud, clinicNode);
  });

  it("is not used for a table with a trigger of its own, which fires for every copied row", async () => {
    const rows = consultation();
    await insertConsultation(cloud.sql, rows);
    await clinicNode.sql.unsafe(`
      create table public.copied_seen (id uuid);
      create function public.note_copied() returns trigger language plpgsql as
        $$ begin insert into public.copied_seen values (new.id); return null; end $$;
      create trigger note_copied after insert on public.appointments for each row execute function public.note_copied()`);
    expect(await copyTables(cloud, clinicNode, { limit: 100 })).toBe(true);
    expect(await clinicNode.sql`select id from public.copied_seen`).toEqual([{ id: rows.appointments.id }]);
  });

  it("is not entered by an owner who may not set it: the ordinary path, the setting untouched", async () => {
    let seen: { prior: string | null; role: string } | undefined;
    // In a transaction rolled back at the end: the role and its grants are not left behind.
    const rolledBack = clinicNode.sql.begin(async (tx) => {
      await tx`create role copy_mode_tester nologin`;
      await tx`grant usage on schema cv_sync to copy_mode_tester`;
      await tx`grant execute on function cv_sync.enter_copy_mode(text) to copy_mode_tester`;
      await tx`set local role copy_mode_tester`;
      [seen] = await tx<{ prior: string | null; role: string }[]>`
        select cv_sync.enter_copy_mode('appointments') as prior, current_setting('session_replication_role') as role`;
      await tx`select 1/0`;
    });
    expect(await failureCode(() => rolledBack)).toBe("22012");
    expect(seen).toEqual({ prior: null, role: "origin" });
  });
});
