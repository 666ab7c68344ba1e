import { TABLE_NAMES } from "@centrovision/core";
import { consultation, createNode, insertConsultation, type SqlNode } from "@centrovision/testkit/nodes";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/*
 * A row's scope (0005, "Scope") has its rules twice: cv_sync.row_scope, called for one row (a
 * capture's trigger, the check of what a node credential sends), and cv_sync.scope_of, which a
 * statement over a whole batch takes in (sql/functions/03_sync_apply.sql). They must agree.
 */

let node: SqlNode;
beforeAll(async () => {
  node = await createNode("scope_rules");
});
afterAll(async () => {
  await node?.drop();
});

describe("the scope rules", () => {
  it("give the same scope through row_scope and scope_of for every row of every synced table", async () => {
    const [a, b] = [consultation(), consultation()];
    await insertConsultation(node.sql, a);
    await insertConsultation(node.sql, b);
    // Links across branches: A's patient and doctor seen at B (an appointment and its encounter),
    // and A's doctor working at B too.
    const appointment = {
      ...a.appointments,
      id: crypto.randomUUID(),
      branch_id: b.branches.id,
      room_id: b.rooms.id,
    };
    const encounter = {
      ...a.encounters,
      id: crypto.randomUUID(),
      branch_id: b.branches.id,
      appointment_id: appointment.id,
    };
    await node.sql`insert into appointments ${node.sql(appointment)}`;
    await node.sql`insert into encounters ${node.sql(encounter)}`;
    await node.sql`insert into user_branches (id, user_id, branch_id) values (${crypto.randomUUID()}, ${a.profiles.id}, ${b.branches.id})`;
    let multiBranch = 0;
    for (const table of TABLE_NAMES) {
      // Each row as it is here, and as an image of a row that is not (another id: nothing links to it).
      const rows = await node.sql<{ id: string; row_scope: string[] | null; scope_of: string[] | null }[]>`
        select x.id, cv_sync.row_scope(${table}, x.r) as row_scope,
          (select s.scope from cv_sync.scope_of(${table}, x.r) s) as scope_of
        from (select t.id, to_jsonb(t) as r from ${node.sql(table)} t
          union all select t.id, to_jsonb(t) || jsonb_build_object('id', gen_random_uuid()) from ${node.sql(table)} t) x`;
      // Three rows in the tables the cross-branch links added to, two elsewhere; each twice.
      const linked = ["user_branches", "appointments", "encounters"].includes(table);
      expect(rows.length, table).toBe(linked ? 6 : 4);
      for (const row of rows) expect(row.scope_of, `${table} ${row.id}`).toEqual(row.row_scope);
      multiBranch += rows.filter((row) => (row.row_scope?.length ?? 0) > 1).length;
    }
    // Patient A, doctor A and A's appointment (its encounter is at B too) reach both branches.
    expect(multiBranch).toBeGreaterThanOrEqual(3);
  });
});
