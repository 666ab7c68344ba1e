import { randomUUID } from "node:crypto";
import { SYNCED_TABLES } from "@centrovision/core";
import {
  type ClinicPerson,
  clinicPerson,
  consultation,
  createNode,
  failureCode,
  insert,
  insertConsultation,
  rowOf,
  type SqlNode,
  update,
} from "@centrovision/testkit/nodes";
import type postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/* Capture (PROTOCOL.md "Capture"): every local write becomes one change_log entry and a row_state. */

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
  it("syncs the tables of SYNCED_TABLES, in their order, each with the capture trigger", async () => {
    const listed = await node.sql<{ table_name: string }[]>`
      select table_name from cv_sync.synced_tables order by position`;
    expect(listed.map((t) => t.table_name)).toEqual([...SYNCED_TABLES]);
    const triggers = await node.sql<{ table: string }[]>`
      select c.relname as table from pg_trigger t join pg_class c on c.oid = t.tgrelid
      where t.tgname = 'cv_sync_capture' order by c.relname`;
    expect(triggers.map((t) => t.table)).toEqual([...SYNCED_TABLES].sort());
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
