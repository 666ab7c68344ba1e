import { randomUUID } from "node:crypto";
import { SYNCED_TABLES } from "@centrovision/core";
import { applyMigrations, shapeSupabaseDatabase } from "@centrovision/testkit";
import {
  type ClinicPerson,
  clinicPerson,
  consultation,
  createNode,
  failureCode,
  insert,
  insertConsultation,
  onServer,
  type Row,
  rowOf,
  type SqlNode,
  sharedServer,
  update,
} from "@centrovision/testkit/nodes";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/*
 * Capture (PROTOCOL.md "Capture"): every local write becomes one change_log entry and a row_state,
 * written once per statement (sql/0015), and on the clinic server a NOTIFY for the sync daemon.
 */

const HLC = /^\d{15}\.\d{10}\.[0-9a-f-]{36}$/;

interface Entry {
  table_name: string;
  row_id: string;
  op: string;
  row_data: Record<string, unknown>;
  version: string;
  base_version: string | null;
  origin: string;
  hlc: string;
  changed_columns: string[] | null;
}

let node: SqlNode;
beforeAll(async () => {
  node = await createNode("capture");
});
afterAll(async () => {
  await node?.drop();
});

async function entries(rowId: string): Promise<Entry[]> {
  return node.sql<Entry[]>`
    select table_name, row_id, op, row_data, version, base_version, origin, hlc, changed_columns
    from cv_sync.change_log where row_id = ${rowId} order by seq`;
}

async function branch(): Promise<string> {
  const row = consultation().branches;
  await insert(node.sql, "branches", row);
  return row.id;
}

describe("capture", () => {
  it("syncs the tables of SYNCED_TABLES, in their order, each with the statement capture triggers", async () => {
    const listed = await node.sql<{ table_name: string }[]>`
      select table_name from cv_sync.synced_tables order by position`;
    expect(listed.map((t) => t.table_name)).toEqual([...SYNCED_TABLES]);
    // One trigger per event (transition tables allow no more), each once per statement (tgtype bit 0 clear).
    const triggers = await node.sql<{ table: string; names: string[] }[]>`
      select c.relname as table, array_agg(t.tgname::text order by t.tgname) as names
      from pg_trigger t join pg_class c on c.oid = t.tgrelid
      where t.tgname like 'cv\\_sync\\_capture%' and t.tgtype & 1 = 0 and t.tgfoid = 'cv_sync.capture()'::regprocedure
      group by c.relname order by c.relname`;
    expect(triggers).toEqual(
      [...SYNCED_TABLES].sort().map((table) => ({
        table,
        names: ["cv_sync_capture_delete", "cv_sync_capture_insert", "cv_sync_capture_update"],
      })),
    );
    const perRow = await node.sql`
      select 1 from pg_trigger t where t.tgfoid = 'cv_sync.capture()'::regprocedure and t.tgtype & 1 = 1`;
    expect(perRow).toEqual([]);
  });

  it("logs an insert with the full row, this node as origin and a fresh HLC", async () => {
    const id = await branch();
    const [entry] = await entries(id);
    const row = await rowOf(node.sql, "branches", id);
    expect(entry).toMatchObject({
      table_name: "branches",
      op: "upsert",
      row_data: row,
      version: row?.version,
      base_version: null,
      origin: node.id,
      changed_columns: null,
    });
    expect(entry?.hlc).toMatch(HLC);
    expect(entry?.hlc.endsWith(node.id)).toBe(true);
  });

  it("logs an update with its base version and exactly the columns that changed", async () => {
    const id = await branch();
    const before = await rowOf(node.sql, "branches", id);
    await update(node.sql, "branches", id, {
      name: "Centro Roma Norte",
      phone: "+52 55 1111 2222",
      active: true,
    });
    const [, entry] = await entries(id);
    expect(entry).toMatchObject({
      op: "upsert",
      base_version: before?.version,
      changed_columns: ["name", "phone"],
    });
    expect(entry?.version).not.toBe(before?.version);
  });

  it("logs a delete with the last row image and a version of its own, and keeps a tombstone", async () => {
    const id = await branch();
    const last = await rowOf(node.sql, "branches", id);
    await node.sql`delete from branches where id = ${id}`;
    const [, entry] = await entries(id);
    expect(entry).toMatchObject({ op: "delete", row_data: last, base_version: last?.version });
    expect(entry?.version).not.toBe(last?.version);
    const [state] = await node.sql`select version, deleted from cv_sync.row_state where row_id = ${id}`;
    expect(state).toEqual({ version: entry?.version, deleted: true });
  });

  it("orders a node's stamps by their logical part, above every HLC received from peers", async () => {
    const id = await branch();
    const future = Date.now() + 3_600_000;
    await node.sql`update cv_sync.node set hlc_floor = ${future}`;
    try {
      await update(node.sql, "branches", id, { name: "Centro Roma Sur" });
      const [first, second] = await entries(id);
      const part = (hlc: string | undefined, i: number) => Number(hlc?.split(".")[i]);
      expect(part(second?.hlc, 1)).toBeGreaterThan(part(first?.hlc, 1));
      expect(part(second?.hlc, 0)).toBe(future + 1);
    } finally {
      await node.sql`update cv_sync.node set hlc_floor = 0`;
    }
  });

  it("refuses to change the id of a synced row (CV007)", async () => {
    const id = await branch();
    expect(await failureCode(() => update(node.sql, "branches", id, { id: randomUUID() }))).toBe("CV007");
  });

  it("logs nothing for a write that rolls back", async () => {
    const row = consultation().branches;
    await node.sql
      .begin(async (tx) => {
        await insert(tx, "branches", row);
        throw new Error("rollback");
      })
      .catch(() => {});
    expect(await entries(row.id)).toEqual([]);
  });

  it("captures a whole clinic graph, one entry per row", async () => {
    const rows = consultation();
    await insertConsultation(node.sql, rows);
    const logged = await node.sql<{ table_name: string }[]>`
      select table_name from cv_sync.change_log
      where row_id in ${node.sql(Object.values(rows).map((r) => r.id))} order by seq`;
    expect(logged.map((e) => e.table_name)).toEqual([...SYNCED_TABLES]);
  });
});

describe("capture, once per statement", () => {
  interface Logged extends Entry {
    seq: string;
  }
  interface State {
    version: string;
    hlc: string;
    deleted: boolean;
    seq: string;
  }

  async function logOf(ids: readonly string[]): Promise<Logged[]> {
    return node.sql<Logged[]>`
      select table_name, row_id, op, row_data, version, base_version, origin, hlc, changed_columns, seq
      from cv_sync.change_log where row_id in ${node.sql(ids)} order by seq`;
  }

  async function stateOf(id: string): Promise<State | undefined> {
    const [state] = await node.sql<State[]>`
      select version, hlc, deleted, seq from cv_sync.row_state where row_id = ${id}`;
    return state;
  }

  /**
   * What the log says of each row, free of what differs between two rows written alike (ids, codes,
   * versions, stamps): its entries, each version chained to the one before, and its row_state.
   */
  async function history(ids: readonly string[]) {
    const log = await logOf(ids);
    const varying = ["id", "code", "version", "base_version", "created_at", "updated_at"];
    return Promise.all(
      ids.map(async (id) => {
        const entries = log.filter((e) => e.row_id === id);
        const state = await stateOf(id);
        const last = entries.at(-1);
        return {
          entries: entries.map((e, i) => ({
            op: e.op,
            changed_columns: e.changed_columns,
            chained: e.base_version === (i === 0 ? null : entries[i - 1]?.version),
            ownVersion:
              e.op === "delete" ? e.version !== e.row_data.version : e.version === e.row_data.version,
            origin: e.origin === node.id,
            data: Object.fromEntries(Object.entries(e.row_data).filter(([key]) => !varying.includes(key))),
          })),
          state: {
            matchesLast:
              state?.version === last?.version && state?.hlc === last?.hlc && state?.seq === last?.seq,
            deleted: state?.deleted,
          },
        };
      }),
    );
  }

  const branches = (n: number) => Array.from({ length: n }, () => consultation().branches);

  it("logs a many-row INSERT, UPDATE and DELETE exactly as one statement per row would", async () => {
    const many = branches(3);
    const single = branches(3);
    const [m, s] = [many.map((r) => r.id), single.map((r) => r.id)];
    await node.sql`insert into branches ${node.sql(many)}`;
    for (const row of single) await insert(node.sql, "branches", row);

    // Every row gets a new name; the second also a new phone.
    const edit = (ids: string[], second: string) => node.sql`
      update branches set name = name || ' (renovada)',
        phone = case when id = ${second} then '+52 55 0000 0000' else phone end
      where id in ${node.sql(ids)}`;
    await edit(m, m[1] as string);
    for (const id of s) await edit([id], s[1] as string);
    // Only meta columns change: an empty changed_columns.
    await node.sql`update branches set version = gen_random_uuid() where id in ${node.sql(m)}`;
    for (const id of s) await node.sql`update branches set version = gen_random_uuid() where id = ${id}`;
    await node.sql`delete from branches where id in ${node.sql(m)}`;
    for (const id of s) await node.sql`delete from branches where id = ${id}`;

    const [byStatement, byRow] = [await history(m), await history(s)];
    expect(byStatement).toEqual(byRow);
    expect(byStatement[1]?.entries.map((e) => [e.op, e.changed_columns])).toEqual([
      ["upsert", null],
      ["upsert", ["name", "phone"]],
      ["upsert", []],
      ["delete", null],
    ]);
    expect(byStatement.every((r) => r.state.matchesLast && r.state.deleted)).toBe(true);
    expect(byStatement.flatMap((r) => r.entries).every((e) => e.chained && e.ownVersion && e.origin)).toBe(
      true,
    );
  });

  it("stamps each row its own HLC, in the order the statement wrote them", async () => {
    const rows = branches(5);
    await node.sql`insert into branches ${node.sql(rows)}`;
    const logged = await logOf(rows.map((r) => r.id));
    expect(logged.map((e) => e.row_id)).toEqual(rows.map((r) => r.id));
    const logical = logged.map((e) => Number(e.hlc.split(".")[1]));
    for (let i = 1; i < logged.length; i++) {
      expect(logical[i]).toBeGreaterThan(logical[i - 1] as number);
      expect((logged[i]?.hlc ?? "") > (logged[i - 1]?.hlc ?? "")).toBe(true);
    }
    for (const entry of logged) {
      expect(entry.hlc).toMatch(HLC);
      expect(entry.row_data).toEqual(await rowOf(node.sql, "branches", entry.row_id));
      expect((await stateOf(entry.row_id))?.hlc).toBe(entry.hlc);
    }
  });

  it("refuses a many-row UPDATE that changes one row's id (CV007), writing and logging nothing", async () => {
    const rows = branches(3);
    await node.sql`insert into branches ${node.sql(rows)}`;
    const ids = rows.map((r) => r.id);
    const moved = ids[1] as string;
    const attempt = node.sql`
      update branches set name = 'Movida', id = case when id = ${moved} then gen_random_uuid() else id end
      where id in ${node.sql(ids)}`;
    await expect(attempt).rejects.toMatchObject({
      code: "CV007",
      message: expect.stringContaining(`public.branches ${moved}`),
    });
    expect((await logOf(ids)).map((e) => e.op)).toEqual(["upsert", "upsert", "upsert"]);
    for (const row of rows)
      expect(await rowOf(node.sql, "branches", row.id)).toMatchObject({ name: row.name });
  });

  it("logs each row of an INSERT … ON CONFLICT DO UPDATE once: an insert or an update", async () => {
    const [existing, fresh] = branches(2) as [Row, Row];
    await insert(node.sql, "branches", existing);
    const before = await rowOf(node.sql, "branches", existing.id);
    await node.sql`
      insert into branches ${node.sql([{ ...existing, name: "Centro Roma (upsert)" }, fresh])}
      on conflict (id) do update set name = excluded.name`;
    const logged = await logOf([existing.id, fresh.id]);
    // The statement's UPDATE trigger fires before its INSERT trigger: the rows' order across them
    // is PostgreSQL's, each row's own history is what counts.
    const of = (id: string) =>
      logged.filter((e) => e.row_id === id).map((e) => [e.base_version, e.changed_columns]);
    expect(of(existing.id)).toEqual([
      [null, null],
      [before?.version, ["name"]],
    ]);
    expect(of(fresh.id)).toEqual([[null, null]]);
    for (const id of [existing.id, fresh.id]) {
      const row = await rowOf(node.sql, "branches", id);
      expect(logged.filter((e) => e.row_id === id).at(-1)?.row_data).toEqual(row);
      expect((await stateOf(id))?.version).toBe(row?.version);
    }
  });

  it("logs both writes of a row one query updates twice, row_state ending with the later", async () => {
    const rows = consultation();
    await insertConsultation(node.sql, rows);
    const appointment = rows.appointments.id;
    const before = await rowOf(node.sql, "appointments", appointment);
    // The CTE edits the appointment; deleting its room sets room_id NULL on it again (ON DELETE
    // SET NULL). The cascade runs before the query's statement triggers fire, so the appointments'
    // UPDATE trigger fires once, its transition table holding both writes of the row.
    await node.sql`
      with edit as (update appointments set reason = 'Revisión de presión intraocular' where id = ${appointment})
      delete from rooms where id = ${rows.rooms.id}`;
    const after = await rowOf(node.sql, "appointments", appointment);
    const [, edit, cascade] = await logOf([appointment]);
    expect(edit).toMatchObject({ base_version: before?.version, changed_columns: ["reason"] });
    expect(edit?.row_data).toMatchObject({
      reason: "Revisión de presión intraocular",
      room_id: rows.rooms.id,
    });
    expect(cascade).toMatchObject({
      base_version: edit?.version,
      changed_columns: ["room_id"],
      row_data: after,
    });
    expect(after).toMatchObject({ room_id: null, version: cascade?.version });
    expect(await stateOf(appointment)).toMatchObject({
      version: cascade?.version,
      hlc: cascade?.hlc,
      seq: cascade?.seq,
      deleted: false,
    });
    expect((await logOf([rows.rooms.id])).map((e) => e.op)).toEqual(["upsert", "delete"]);
  });
});

describe("the change notice (NOTIFY cv_sync_change)", () => {
  /**
   * The notices on `channel` that `work`'s transactions sent: a marker notice is sent after it, and
   * notices arrive in commit order, so everything before the marker is `work`'s and nothing of it
   * can come later.
   */
  async function noticesOf(db: postgres.Sql, work: () => Promise<unknown>): Promise<string[]> {
    const heard: string[] = [];
    const marker = randomUUID();
    let markerHeard: () => void = () => {};
    const done = new Promise<void>((resolve) => {
      markerHeard = resolve;
    });
    const listening = await db.listen("cv_sync_change", (payload) => {
      if (payload === marker) markerHeard();
      else heard.push(payload);
    });
    try {
      await work();
      await db`select pg_notify('cv_sync_change', ${marker})`;
      await done;
      return heard;
    } finally {
      await listening.unlisten();
    }
  }

  it("tells the clinic server's listeners once per statement that logged a row", async () => {
    const rows = [consultation().branches, consultation().branches];
    expect(await noticesOf(node.sql, () => node.sql`insert into branches ${node.sql(rows)}`)).toEqual([""]);
    const ids = rows.map((r) => r.id);
    expect(
      await noticesOf(
        node.sql,
        () => node.sql`update branches set name = 'Avisada' where id in ${node.sql(ids)}`,
      ),
    ).toEqual([""]);
    expect(
      await noticesOf(node.sql, () => node.sql`delete from branches where id = ${ids[0] as string}`),
    ).toEqual([""]);
  });

  it("is not sent for a statement that wrote no row, nor for a sync apply", async () => {
    const id = await branch();
    expect(
      await noticesOf(
        node.sql,
        () => node.sql`update branches set name = 'Nadie' where id = ${randomUUID()}`,
      ),
    ).toEqual([]);
    expect(await noticesOf(node.sql, () => node.sql`delete from branches where false`)).toEqual([]);
    expect(
      await noticesOf(node.sql, () =>
        node.sql.begin(async (tx) => {
          await tx`select cv_sync.begin_apply(${randomUUID()})`;
          await tx`update branches set name = 'Replicada' where id = ${id}`;
          await tx`select cv_sync.end_apply()`;
        }),
      ),
    ).toEqual([]);
    expect(await entries(id)).toHaveLength(1);
  });

  it("is never sent on the cloud, whose writes are captured all the same", async () => {
    const database = `sync_capture_cloud_${randomUUID().slice(0, 8)}`;
    await onServer(`create database "${database}"`);
    try {
      const { postgresUrl } = await shapeSupabaseDatabase(sharedServer(), database);
      await applyMigrations(postgresUrl);
      const cloud = postgres(postgresUrl, { max: 2, onnotice: () => {} });
      try {
        expect(await cloud`select to_regclass('cv_auth.signing_key') as key`).toEqual([{ key: null }]);
        const row = consultation().branches;
        expect(await noticesOf(cloud, () => insert(cloud, "branches", row))).toEqual([]);
        expect(await cloud`select op from cv_sync.change_log where row_id = ${row.id}`).toEqual([
          { op: "upsert" },
        ]);
      } finally {
        await cloud.end();
      }
    } finally {
      await onServer(`drop database "${database}" with (force)`);
    }
  });
});

describe("the sync-apply marker", () => {
  /**
   * A PC's signed-in person (role authenticated with a verified clinic session), an admin at every
   * branch these tests make: the policies would let it edit them, so only the marker's guard refuses.
   */
  let person: ClinicPerson;
  beforeAll(async () => {
    person = await clinicPerson(node, { admin: true, fullName: "Administración" });
  });

  /** Starts acting as `role` in `tx`: "person" is the PC's person, null the schema owner. */
  async function actAs(tx: postgres.TransactionSql, role: string | null) {
    if (role === "person") {
      await tx`set local role authenticated`;
      await tx`select set_config('centrovision.session', ${person.token}, true)`;
    } else if (role !== null) {
      await tx.unsafe(`set local role ${role}`);
    }
  }

  /** Runs `statement` as `role` with centrovision.sync_origin set, in a transaction; the error it raised. */
  async function asSync(role: string | null, statement: string, id: string) {
    return node.sql
      .begin(async (tx) => {
        await actAs(tx, role);
        await tx`select set_config('centrovision.sync_origin', ${randomUUID()}, true)`;
        await tx.unsafe(statement, [id]);
      })
      .then(
        () => undefined,
        (error: { code?: string; message?: string }) => error,
      );
  }
  const forged = "00000000-0000-4000-8000-000000000000";

  it("refuses, whole, a write by anyone who set centrovision.sync_origin outside a sync apply", async () => {
    for (const role of ["person", "centrovision_sync", null, "centrovision_app"]) {
      const id = await branch();
      await person.admit(id);
      const before = await rowOf(node.sql, "branches", id);
      for (const statement of [
        `update branches set name = 'Forjada', version = '${forged}' where id = $1`,
        "delete from branches where id = $1",
      ]) {
        const error = await asSync(role, statement, id);
        expect(error?.code, `${role}: ${statement}`).toBe("42501");
        // The guard's refusal; a PC login alone and the sync role hold no table, so the missing
        // grant refuses first.
        expect(error?.message).toContain(
          role === "centrovision_app" || role === "centrovision_sync"
            ? "permission denied for table branches"
            : "centrovision.sync_origin is reserved",
        );
      }
      expect(await rowOf(node.sql, "branches", id)).toEqual(before);
      expect(await entries(id)).toHaveLength(1);
    }
    // Without the setting, the same person's edit is an ordinary, captured write.
    const id = await branch();
    await person.admit(id);
    await node.sql.begin(async (tx) => {
      await actAs(tx, "person");
      await tx`update branches set name = 'Centro Roma (renovado)' where id = ${id}`;
    });
    expect(await entries(id)).toHaveLength(2);
  });

  it("refuses a statement that sets centrovision.sync_origin for its rows and clears it before its end", async () => {
    const id = await branch();
    await person.admit(id);
    const before = await rowOf(node.sql, "branches", id);
    const set = `set_config('centrovision.sync_origin', '${randomUUID()}', true)`;
    const clear = "set_config('centrovision.sync_origin', '', true)";
    const fresh = randomUUID();
    for (const statement of [
      // The row triggers would see the flag (no stamping: a forged version, author and time), the
      // statement's end would not (no guard, and the capture logs it as an ordinary write).
      `update branches set name = 'Forjada', version = '${forged}', updated_at = '2001-01-01', base_version = version
         where id = $1 and ${set} <> '' returning ${clear}`,
      `insert into branches (id, code, name, address, timezone, version, created_at, updated_at)
         select '${fresh}', 'FORJA', 'Forjada', 'Calle 1', 'America/Mexico_City', '${forged}', '2001-01-01', '2001-01-01'
         where $1::uuid is not null and ${set} <> '' returning ${clear}`,
    ]) {
      const error = await node.sql
        .begin(async (tx) => {
          await actAs(tx, "person");
          await tx.unsafe(statement, [id]);
        })
        .then(
          () => undefined,
          (e: { code?: string; message?: string }) => e,
        );
      expect(error?.code, statement).toBe("42501");
      expect(error?.message).toContain("centrovision.sync_origin is reserved");
    }
    expect(await rowOf(node.sql, "branches", id)).toEqual(before);
    expect(await rowOf(node.sql, "branches", fresh)).toBeUndefined();
    expect(await entries(id)).toHaveLength(1);
  });

  it("cannot be forged: only the owner's functions can register a transaction as a sync apply", async () => {
    for (const role of ["person", "centrovision_app", "centrovision_sync"]) {
      const attempt = node.sql.begin(async (tx) => {
        await actAs(tx, role);
        await tx`insert into cv_sync.applying values (pg_current_xact_id(), ${randomUUID()})`;
      });
      await expect(attempt).rejects.toMatchObject({ code: "42501" });
      const call = node.sql.begin(async (tx) => {
        await actAs(tx, role);
        await tx`select cv_sync.begin_apply(${randomUUID()})`;
      });
      await expect(call).rejects.toMatchObject({ code: "42501" });
    }
  });

  it("writes verbatim and uncaptured inside a sync apply, and only until it ends", async () => {
    const id = await branch();
    await node.sql.begin(async (tx) => {
      await tx`select cv_sync.begin_apply(${randomUUID()})`;
      await tx.unsafe(`update branches set name = 'Replicada', version = '${forged}' where id = $1`, [id]);
      await tx`select cv_sync.end_apply()`;
      await tx.unsafe(`update branches set name = 'Local' where id = $1`, [id]);
    });
    expect(await rowOf(node.sql, "branches", id)).toMatchObject({ name: "Local", base_version: forged });
    expect(await entries(id)).toHaveLength(2);
  });
});
