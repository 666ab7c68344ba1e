import {
  consultation,
  createNode,
  failureCode,
  insert,
  type SqlNode,
  update,
} from "@centrovision/testkit/nodes";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type Cursor,
  expectConverged,
  json,
  movePage,
  pull,
  storedCursor,
  sync,
} from "../support/sql-sync.js";

/* Cursor and pull (PROTOCOL.md "Cursor"): (txid, seq) below the xmin horizon, never a timestamp. */

let cloud: SqlNode;
let clinicNode: SqlNode;
beforeAll(async () => {
  [cloud, clinicNode] = await Promise.all([createNode("cloud"), createNode("clinic")]);
});
afterAll(async () => {
  await Promise.all([cloud?.drop(), clinicNode?.drop()]);
});

async function maxTxid(node: SqlNode): Promise<number> {
  const [found] = await node.sql<{ max: number }[]>`select (cv_sync_node() ->> 'max_txid')::bigint as max`;
  return Number(found?.max);
}

async function branchIds(node: SqlNode): Promise<string[]> {
  return (await node.sql<{ id: string }[]>`select id from branches order by id`).map((r) => r.id);
}

describe("late commit", () => {
  it("delivers a transaction that commits after a later one exactly once; the cursor waits for it", async () => {
    await sync(cloud, clinicNode);
    const late = consultation().branches;
    const early = consultation().branches;
    const t1 = await cloud.sql.reserve();
    try {
      await t1`begin`;
      await insert(t1, "branches", late); // T1 takes the lower transaction id
      await insert(cloud.sql, "branches", early); // T2 commits first

      const before = await storedCursor(clinicNode, cloud);
      const { page } = await movePage(cloud, clinicNode);
      expect(page.changes).toEqual([]);
      const [t1Id] = await t1<{ txid: string }[]>`select pg_current_xact_id()::text as txid`;
      expect(page.cursor.txid).toBeLessThanOrEqual(Number(t1Id?.txid));
      expect((await storedCursor(clinicNode, cloud)).txid).toBeGreaterThanOrEqual(before.txid);

      await t1`commit`;
    } finally {
      t1.release();
    }
    const { page } = await movePage(cloud, clinicNode);
    expect(page.changes.map((c) => c.row_id).sort()).toEqual([late.id, early.id].sort());
    const again = await movePage(cloud, clinicNode);
    expect(again.page.changes).toEqual([]);
    expect(await branchIds(clinicNode)).toEqual(expect.arrayContaining([late.id, early.id]));
    await expectConverged(cloud, clinicNode);
  });
});

describe("cv_sync_pull", () => {
  it("moves an idle reader's cursor up to the horizon", async () => {
    await sync(cloud, clinicNode);
    const page = await pull(cloud, clinicNode, await storedCursor(clinicNode, cloud));
    expect(page).toMatchObject({ changes: [], has_more: false });
    expect(page.cursor.seq).toBe(0);
    expect(page.cursor.txid).toBeLessThanOrEqual(await maxTxid(cloud));
  });

  it("sends a page as its header, then its changes in order in chunks of 100, then an empty chunk (its end)", async () => {
    await sync(cloud, clinicNode);
    const start = await storedCursor(clinicNode, cloud);
    const [branch] = await cloud.sql<{ id: string }[]>`select id from branches limit 1`;
    await cloud.sql`
      insert into rooms (id, branch_id, name, kind)
      select gen_random_uuid(), ${branch?.id as string}, 'Sala ' || n, 'consultation' from generate_series(1, 250) n`;
    const [header, ...chunks] = (
      await cloud.sql<{ r: unknown }[]>`
        select r from cv_sync_pull(${clinicNode.id}, ${json(cloud.sql, start)}, 250) r`
    ).map((row) => row.r as { seq: number }[]);
    expect(header).toMatchObject({ has_more: false, end_marker: true });
    expect(chunks.map((chunk) => chunk.length)).toEqual([100, 100, 50, 0]);
    const seqs = chunks.flat().map((change) => change.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect((await pull(cloud, clinicNode, start, 250)).changes.map((change) => change.seq)).toEqual(seqs);
    // A page with no change is its header and the end.
    const after = (await pull(cloud, clinicNode, start, 250)).cursor;
    const empty = await cloud.sql<{ r: unknown }[]>`
      select r from cv_sync_pull(${clinicNode.id}, ${json(cloud.sql, after)}, 250) r`;
    expect(empty.map((row) => row.r)).toEqual([expect.objectContaining({ end_marker: true }), []]);
  });

  it("ends a page at a transaction boundary, splitting only a transaction over twice the page size", async () => {
    await sync(cloud, clinicNode);
    const start = await storedCursor(clinicNode, cloud);
    await cloud.sql.begin(async (tx) => {
      for (let i = 0; i < 5; i += 1) await insert(tx, "branches", consultation().branches);
    });
    const whole = await pull(cloud, clinicNode, start, 3);
    expect(whole.changes).toHaveLength(5);
    expect(whole.has_more).toBe(false);

    await sync(cloud, clinicNode);
    const next = await storedCursor(clinicNode, cloud);
    await cloud.sql.begin(async (tx) => {
      for (let i = 0; i < 10; i += 1) await insert(tx, "branches", consultation().branches);
    });
    const split = await pull(cloud, clinicNode, next, 3);
    expect(split.changes).toHaveLength(6);
    expect(split.has_more).toBe(true);
    const rest = await pull(cloud, clinicNode, split.cursor, 3);
    expect(new Set([...split.changes, ...rest.changes].map((c) => c.seq)).size).toBe(10);
  });

  it("never returns a change to the node it came from, but moves that node's cursor past it", async () => {
    const row = consultation().branches;
    await insert(clinicNode.sql, "branches", row);
    await sync(clinicNode, cloud);
    const before = await storedCursor(clinicNode, cloud);
    const { page } = await movePage(cloud, clinicNode);
    expect(page.changes.filter((c) => c.row_id === row.id)).toEqual([]);
    expect(page.cursor.txid).toBeGreaterThan(before.txid);
  });

  it("refuses a cursor ahead of this node: it was restored from a backup (CV006)", async () => {
    const ahead: Cursor = { txid: (await maxTxid(cloud)) + 1_000_000, seq: 1 };
    expect(await failureCode(() => pull(cloud, clinicNode, ahead))).toBe("CV006");
  });

  it.each([
    ["a missing cursor", null],
    ["a negative txid", { txid: -1, seq: 0 }],
    ["a string", { txid: "12", seq: 0 }],
  ])("refuses %s (CV005)", async (_what, cursor) => {
    const code = await failureCode(
      () => cloud.sql`select cv_sync_pull(${clinicNode.id}, ${json(cloud.sql, cursor)}, 10)`,
    );
    expect(code).toBe("CV005");
  });

  it.each([0, 200_001, 2_147_483_647])(
    "refuses a page of %i changes: at most the engine's largest, 200,000 (CV005)",
    async (limit) => {
      const start = json(cloud.sql, { txid: 0, seq: 0 });
      expect(
        await failureCode(() => cloud.sql`select cv_sync_pull(${clinicNode.id}, ${start}, ${limit})`),
      ).toBe("CV005");
    },
  );
});

describe("cv_sync_node", () => {
  it("reports a max_txid no cursor of this node can exceed, which tells a peer it was restored", async () => {
    await sync(cloud, clinicNode);
    const held = await storedCursor(clinicNode, cloud);
    expect(held.txid).toBeLessThanOrEqual(await maxTxid(cloud));
    const [node] = await cloud.sql<{ n: Record<string, unknown> }[]>`select cv_sync_node() as n`;
    expect(node?.n).toMatchObject({ node_id: cloud.id, node_name: "cloud" });
    expect(Object.keys(node?.n.fingerprint as object).length).toBe(10);
  });
});

describe("cv_sync_ack and cv_sync_pending", () => {
  it("counts what a consumer has not acknowledged, and never moves an acknowledgement back", async () => {
    await sync(cloud, clinicNode);
    const pending = async () => {
      const [found] = await cloud.sql<{ n: number }[]>`select cv_sync_pending(${clinicNode.id}) as n`;
      return Number(found?.n);
    };
    expect(await pending()).toBe(0);
    const row = consultation().branches;
    await insert(cloud.sql, "branches", row);
    await update(cloud.sql, "branches", row.id, { name: "Centro Roma Norte" });
    expect(await pending()).toBe(2);
    await sync(cloud, clinicNode);
    expect(await pending()).toBe(0);
    await cloud.sql`select cv_sync_ack(${clinicNode.id}, '{"txid": 1, "seq": 1}')`;
    expect(await pending()).toBe(0);
  });
});
