import {
  consultation,
  createNode,
  insert,
  insertConsultation,
  rowOf,
  type SqlNode,
  update,
} from "@centrovision/testkit/nodes";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { conflicts, expectConverged, json, syncBoth } from "../support/sql-sync.js";

/* Concurrent edits (PROTOCOL.md "Conflicts"): detected by version, settled alike on both nodes. */

let cloud: SqlNode;
let clinicNode: SqlNode;
let rows: ReturnType<typeof consultation>;
beforeAll(async () => {
  [cloud, clinicNode] = await Promise.all([createNode("cloud"), createNode("clinic")]);
});
afterAll(async () => {
  await Promise.all([cloud?.drop(), clinicNode?.drop()]);
});
beforeEach(async () => {
  rows = consultation();
  await insertConsultation(cloud.sql, rows);
  await syncBoth(cloud, clinicNode);
});

/**
 * Waits until `next`'s clock has passed the last stamp `first` gave its own edits, so an edit made
 * on `next` from now on is stamped later: cv_sync.hlc orders by physical milliseconds first, and
 * within one millisecond by each node's own logical counter, which says nothing across nodes.
 */
async function later(first: SqlNode, next: SqlNode): Promise<void> {
  const [last] = await first.sql<{ hlc: string }[]>`
    select max(hlc) as hlc from cv_sync.change_log where origin = ${first.id}`;
  const clock = async () => {
    const [now] = await next.sql<{ ms: number }[]>`
      select floor(extract(epoch from clock_timestamp()) * 1000)::float8 as ms`;
    return now?.ms;
  };
  await expect.poll(clock).toBeGreaterThan(Number(last?.hlc.split(".")[0]));
}

async function resolve(node: SqlNode, id: string, choice: string, row: object | null = null) {
  await node.sql`select cv_sync_conflict_resolve(${id}, ${choice}, ${row === null ? null : json(node.sql, row)})`;
}

describe("both nodes edit the same row", () => {
  it("same column: the later edit wins on both, and both keep a conflict with both versions", async () => {
    const id = rows.patients.id;
    await update(cloud.sql, "patients", id, { phone: "55 1111 1111" });
    await later(cloud, clinicNode);
    await update(clinicNode.sql, "patients", id, { phone: "55 2222 2222" });
    await syncBoth(cloud, clinicNode);
    await expectConverged(cloud, clinicNode);
    expect(await rowOf(cloud.sql, "patients", id)).toMatchObject({ phone: "55 2222 2222" });

    const [onCloud] = await conflicts(cloud, "open", id);
    const [onClinic] = await conflicts(clinicNode, "open", id);
    expect(onCloud).toMatchObject({
      table_name: "patients",
      row_id: id,
      columns: ["phone"],
      winner: "remote",
    });
    expect(onCloud?.local_row).toMatchObject({ phone: "55 1111 1111" });
    expect(onCloud?.remote_row).toMatchObject({ phone: "55 2222 2222" });
    expect(onClinic).toMatchObject({ id: onCloud?.id, winner: "local", status: "open" });
  });

  it("a reviewed resolution re-applies the losing value through the log and closes the conflict on both", async () => {
    const id = rows.patients.id;
    await update(cloud.sql, "patients", id, { allergies: "Látex" });
    await later(cloud, clinicNode);
    await update(clinicNode.sql, "patients", id, { allergies: "Sulfas" });
    await syncBoth(cloud, clinicNode);
    const [conflict] = await conflicts(cloud, "open", id);
    await resolve(cloud, conflict?.id ?? "", "keep_local");
    await syncBoth(cloud, clinicNode);
    await expectConverged(cloud, clinicNode);
    expect(await rowOf(clinicNode.sql, "patients", id)).toMatchObject({ allergies: "Látex" });
    expect([await conflicts(cloud, "open", id), await conflicts(clinicNode, "open", id)]).toEqual([[], []]);
  });

  it("different columns: merged into one version on both nodes, nothing left to review", async () => {
    const id = rows.patients.id;
    await update(cloud.sql, "patients", id, { phone: "55 3333 3333" });
    await update(clinicNode.sql, "patients", id, { allergies: "Látex", notes: "Usa lentes de contacto" });
    await syncBoth(cloud, clinicNode);
    await expectConverged(cloud, clinicNode);
    expect(await rowOf(cloud.sql, "patients", id)).toMatchObject({
      phone: "55 3333 3333",
      allergies: "Látex",
      notes: "Usa lentes de contacto",
    });
    expect([await conflicts(cloud, "open", id), await conflicts(clinicNode, "open", id)]).toEqual([[], []]);
    // Recorded (as resolved, for the audit) by the node that merged; the other fast-forwarded to the merge.
    const merges = [
      ...(await conflicts(cloud, "resolved", id)),
      ...(await conflicts(clinicNode, "resolved", id)),
    ];
    expect(merges.map((c) => c.winner)).toEqual(["merged"]);
  });

  it("manual policy: each node keeps its value and an open conflict until a person chooses", async () => {
    for (const node of [cloud, clinicNode])
      await node.sql`update cv_sync.synced_tables set policy = 'manual' where table_name = 'exam_eye'`;
    try {
      const id = rows.exam_eye.id;
      await update(cloud.sql, "exam_eye", id, { iop_mmhg: 21 });
      await later(cloud, clinicNode);
      await update(clinicNode.sql, "exam_eye", id, { iop_mmhg: 28 });
      await syncBoth(cloud, clinicNode);
      expect(await rowOf(cloud.sql, "exam_eye", id)).toMatchObject({ iop_mmhg: 21 });
      expect(await rowOf(clinicNode.sql, "exam_eye", id)).toMatchObject({ iop_mmhg: 28 });
      const [conflict] = await conflicts(clinicNode, "open", id);
      expect(conflict).toMatchObject({ policy: "manual", winner: "local", columns: ["iop_mmhg"] });
      expect((await conflicts(cloud, "open", id))[0]?.id).toBe(conflict?.id);

      await resolve(clinicNode, conflict?.id ?? "", "merged", { iop_mmhg: 24.5 });
      await syncBoth(cloud, clinicNode);
      await expectConverged(cloud, clinicNode);
      expect(await rowOf(cloud.sql, "exam_eye", id)).toMatchObject({ iop_mmhg: 24.5 });
      expect([await conflicts(cloud, "open", id), await conflicts(clinicNode, "open", id)]).toEqual([[], []]);
    } finally {
      for (const node of [cloud, clinicNode])
        await node.sql`update cv_sync.synced_tables set policy = 'lww' where table_name = 'exam_eye'`;
    }
  });
});

describe("deletes", () => {
  it("update vs delete, delete later: deleted on both, the edited row kept in the conflict", async () => {
    const id = rows.diagnoses.id;
    await update(clinicNode.sql, "diagnoses", id, { description: "Glaucoma avanzado" });
    await later(clinicNode, cloud);
    await cloud.sql`delete from diagnoses where id = ${id}`;
    await syncBoth(cloud, clinicNode);
    await expectConverged(cloud, clinicNode);
    expect(await rowOf(clinicNode.sql, "diagnoses", id)).toBeUndefined();
    const [conflict] = await conflicts(clinicNode, "open", id);
    expect(conflict).toMatchObject({ winner: "remote", remote_row: null });
    expect(conflict?.local_row).toMatchObject({ description: "Glaucoma avanzado" });
  });

  it("update vs delete, edit later: the row comes back on both", async () => {
    const id = rows.diagnoses.id;
    await cloud.sql`delete from diagnoses where id = ${id}`;
    await later(cloud, clinicNode);
    await update(clinicNode.sql, "diagnoses", id, { status: "resolved" });
    await syncBoth(cloud, clinicNode);
    await expectConverged(cloud, clinicNode);
    expect(await rowOf(cloud.sql, "diagnoses", id)).toMatchObject({ status: "resolved" });
    expect((await conflicts(cloud, "open", id))[0]).toMatchObject({ winner: "remote", local_row: null });
  });

  it("delete vs delete: nothing to settle", async () => {
    for (const node of [cloud, clinicNode])
      await node.sql`delete from diagnoses where id = ${rows.diagnoses.id}`;
    await syncBoth(cloud, clinicNode);
    await expectConverged(cloud, clinicNode);
    const id = rows.diagnoses.id;
    expect([await conflicts(cloud, null, id), await conflicts(clinicNode, null, id)]).toEqual([[], []]);
  });

  it("a later delete that LWW would let win is still refused while a new child references the row", async () => {
    const branch = consultation().branches;
    await insert(cloud.sql, "branches", branch);
    await syncBoth(cloud, clinicNode);
    await update(clinicNode.sql, "branches", branch.id, { name: "Sucursal Norte" });
    await insert(clinicNode.sql, "rooms", { ...consultation().rooms, branch_id: branch.id });
    await later(clinicNode, cloud);
    await cloud.sql`delete from branches where id = ${branch.id}`;
    await syncBoth(cloud, clinicNode);
    await expectConverged(cloud, clinicNode);
    expect(await rowOf(cloud.sql, "branches", branch.id)).toMatchObject({ name: "Sucursal Norte" });
    expect(await conflicts(clinicNode, "open", branch.id)).toEqual([
      expect.objectContaining({ policy: "restrict", winner: "local", remote_row: null }),
    ]);
  });

  it("a deleted parent that the other node gave a new child comes back, whichever side syncs first", async () => {
    const branch = { ...consultation().branches };
    await insert(cloud.sql, "branches", branch);
    await syncBoth(cloud, clinicNode);
    const room = { ...consultation().rooms, branch_id: branch.id };
    await cloud.sql`delete from branches where id = ${branch.id}`;
    await insert(clinicNode.sql, "rooms", room);
    await syncBoth(cloud, clinicNode); // the delete reaches the clinic, where the room blocks it
    await expectConverged(cloud, clinicNode);
    expect(await rowOf(cloud.sql, "rooms", room.id)).toBeDefined();

    const other = { ...consultation().rooms, branch_id: branch.id };
    await clinicNode.sql`delete from rooms where branch_id = ${branch.id}`;
    await syncBoth(cloud, clinicNode);
    await insert(cloud.sql, "rooms", other);
    await clinicNode.sql`delete from branches where id = ${branch.id}`;
    await syncBoth(cloud, clinicNode); // the room reaches the clinic, where its branch is gone
    await expectConverged(cloud, clinicNode);
    expect(await rowOf(clinicNode.sql, "branches", branch.id)).toBeDefined();
    expect((await conflicts(clinicNode, "open", branch.id)).map((c) => c.policy)).toEqual([
      "restrict",
      "restrict",
    ]);
  });
});
