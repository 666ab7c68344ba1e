import { randomUUID } from "node:crypto";
import { consultation, createNode, insert, rowOf, type SqlNode } from "@centrovision/testkit/nodes";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  apply,
  applySnapshot,
  identity,
  type Page,
  pull,
  snapshotPage,
  snapshotProgress,
  storedCursor,
  sync,
} from "../support/sql-sync.js";

/*
 * Bounded clocks (sql/0005 cv_sync.check_clock): no timestamp later than this node's clock plus
 * cv_sync.node.max_clock_skew is taken from a peer, and hlc_floor never passes that bound.
 */

let cloud: SqlNode;
let clinicNode: SqlNode;
beforeAll(async () => {
  [cloud, clinicNode] = await Promise.all([createNode("cloud"), createNode("clinic")]);
});
afterAll(async () => {
  await Promise.all([cloud?.drop(), clinicNode?.drop()]);
});
beforeEach(async () => {
  // Each test starts in sync (what an earlier test stamped ahead let through), both floors at 0.
  await clinicNode.sql`update cv_sync.node set max_clock_skew = '2 hours' where singleton`;
  await sync(cloud, clinicNode);
  await clinicNode.sql`update cv_sync.node set max_clock_skew = default where singleton`;
  for (const node of [cloud, clinicNode])
    await node.sql`update cv_sync.node set hlc_floor = 0 where singleton`;
});

/** Makes `node`'s next stamps `aheadMs` ahead of real time, as a node whose clock runs fast would. */
async function runAhead(node: SqlNode, aheadMs: number): Promise<void> {
  await node.sql`update cv_sync.node set hlc_floor = ${Date.now() + aheadMs} where singleton`;
}

async function floorOf(node: SqlNode): Promise<number> {
  const [found] = await node.sql<{ floor: string }[]>`select hlc_floor::text as floor from cv_sync.node`;
  return Number(found?.floor);
}

/** The SQLSTATE and message `work` fails with. */
async function failure(work: () => Promise<unknown>): Promise<{ code?: string; message?: string }> {
  try {
    await work();
  } catch (error) {
    return error as { code?: string; message?: string };
  }
  throw new Error("expected a failure");
}

describe("a peer's batch", () => {
  it("is refused whole (CV009) when one change is stamped an hour ahead: nothing applied, cursor and floor unchanged", async () => {
    const onTime = consultation().branches;
    await insert(cloud.sql, "branches", onTime);
    await runAhead(cloud, 3_600_000);
    const ahead = consultation().branches;
    await insert(cloud.sql, "branches", ahead);

    const expected = await storedCursor(clinicNode, cloud);
    const floor = await floorOf(clinicNode);
    const page = await pull(cloud, clinicNode, expected);
    expect(page.changes.map((c) => c.row_id)).toEqual([onTime.id, ahead.id]);
    const error = await failure(async () => apply(clinicNode, await identity(cloud), expected, page));
    expect(error.code).toBe("CV009");
    expect(error.message).toMatch(
      /^the HLC of a change of branches from the other node is 3[56]\d\d s ahead of this server's clock \(at most 300 s allowed\); nothing was applied$/,
    );
    expect(await rowOf(clinicNode.sql, "branches", onTime.id)).toBeUndefined();
    expect(await rowOf(clinicNode.sql, "branches", ahead.id)).toBeUndefined();
    expect(await storedCursor(clinicNode, cloud)).toEqual(expected);
    expect(await floorOf(clinicNode)).toBe(floor);
  });

  it("is refused whole (CV005) when an HLC's time is not digits: read as a bigint it is 1970, as text it wins every conflict", async () => {
    const row = consultation().branches;
    await insert(cloud.sql, "branches", row);
    const expected = await storedCursor(clinicNode, cloud);
    const page = await pull(cloud, clinicNode, expected);
    for (const time of ["9_9_9_9_9_9_9_9", "0x0000000000001", "+00000000000001"]) {
      const forged: Page = {
        ...page,
        changes: page.changes.map((c) => ({ ...c, hlc: `${time}.${c.hlc.slice(16)}` })),
      };
      const error = await failure(async () => apply(clinicNode, await identity(cloud), expected, forged));
      expect(error.code, time).toBe("CV005");
      expect(error.message).toMatch(
        /^change #1 is not a valid change .*an HLC of 15 digits, a dot, 10 digits/,
      );
    }
    expect(await rowOf(clinicNode.sql, "branches", row.id)).toBeUndefined();
    expect(await storedCursor(clinicNode, cloud)).toEqual(expected);
  });

  it("is applied when its changes are 30 s ahead, inside the allowed skew, and refused at 10 minutes", async () => {
    await runAhead(cloud, 30_000);
    const row = consultation().branches;
    await insert(cloud.sql, "branches", row);
    await sync(cloud, clinicNode);
    expect(await rowOf(clinicNode.sql, "branches", row.id)).toBeDefined();
    expect(await floorOf(clinicNode)).toBeGreaterThan(Date.now() + 25_000);

    await runAhead(cloud, 600_000);
    await insert(cloud.sql, "branches", consultation().branches);
    expect((await failure(() => sync(cloud, clinicNode))).code).toBe("CV009");
  });

  it("is refused when a row's updated_at or created_at is ahead, even under an HLC that is not", async () => {
    await insert(cloud.sql, "branches", consultation().branches);
    const expected = await storedCursor(clinicNode, cloud);
    const page = await pull(cloud, clinicNode, expected);
    const source = await identity(cloud);
    for (const column of ["updated_at", "created_at"]) {
      const forged: Page = {
        ...page,
        changes: page.changes.map((c) => ({ ...c, row: { ...c.row, [column]: "2099-01-01T00:00:00Z" } })),
      };
      const error = await failure(() => apply(clinicNode, source, expected, forged));
      expect(error).toMatchObject({ code: "CV009" });
      expect(error.message).toContain(`the ${column} of a change of branches from the other node is`);
    }
    expect(await storedCursor(clinicNode, cloud)).toEqual(expected);
  });

  it("follows the node's max_clock_skew setting", async () => {
    await clinicNode.sql`update cv_sync.node set max_clock_skew = '10 seconds' where singleton`;
    await runAhead(cloud, 30_000);
    await insert(cloud.sql, "branches", consultation().branches);
    const error = await failure(() => sync(cloud, clinicNode));
    expect(error.code).toBe("CV009");
    expect(error.message).toContain("(at most 10 s allowed)");
  });
});

describe("an initial-sync page", () => {
  it("is refused (CV009) when a row's HLC is ahead; the copy stays where it was", async () => {
    const fresh = await createNode("fresh");
    try {
      await runAhead(cloud, 3_600_000);
      await insert(cloud.sql, "branches", consultation().branches);
      const page = await snapshotPage(cloud, "branches", null, 1000);
      const error = await failure(() => applySnapshot(fresh, cloud, page));
      expect(error.code).toBe("CV009");
      expect(error.message).toContain("the HLC of a change of branches from the other node is");
      expect(await snapshotProgress(fresh, cloud)).toBeNull();
      const [count] = await fresh.sql<{ n: number }[]>`select count(*)::int as n from branches`;
      expect(count?.n).toBe(0);
    } finally {
      await fresh.drop();
    }
  });
});

describe("hlc_floor", () => {
  it("is never raised past this node's clock plus the allowed skew, even by a change that got past the checks", async () => {
    const written = consultation().branches;
    await insert(cloud.sql, "branches", written);
    const row = (await rowOf(cloud.sql, "branches", written.id)) as { id: string; version: string };
    const origin = randomUUID();
    const hlc = `253402300799999.0000000001.${origin}`;
    /** Carries the floor out of a transaction that must not commit: the row above is no real peer's. */
    class Rollback {
      constructor(readonly floor: number) {}
    }
    const outcome = await clinicNode.sql
      .begin(async (tx) => {
        await tx`select cv_sync.begin_apply(${origin})`;
        await tx`
          select cv_sync.apply_changes(${origin}, array[row('branches', ${row.id}::uuid, 'upsert',
            ${JSON.stringify(row)}::text::jsonb, ${row.version}::uuid, null, ${origin}::uuid, ${hlc}, null, null, null)::cv_sync.change],
            false, true)`;
        const [found] = await tx<{ floor: string }[]>`select hlc_floor::text as floor from cv_sync.node`;
        throw new Rollback(Number(found?.floor));
      })
      .catch((error: unknown) => error);
    expect(outcome).toBeInstanceOf(Rollback);
    const { floor } = outcome as Rollback;
    expect(floor).toBeLessThanOrEqual(Date.now() + 5 * 60_000);
    expect(floor).toBeGreaterThan(Date.now() + 4 * 60_000);
  });
});

describe("a node whose clock ran far ahead for a while", () => {
  it("re-stamps its own changes of that while once its clock is right (cv_sync_restamp_ahead), and its push resumes", async () => {
    const made = consultation();
    await insert(clinicNode.sql, "branches", made.branches);
    await sync(clinicNode, cloud);
    const year9999 = Date.UTC(9999, 11, 31);
    // Its clock read 9999: an apply raised the HLC floor there, a person's edit was stamped there,
    // and so was the row's updated_at.
    await runAhead(clinicNode, year9999 - Date.now());
    await clinicNode.sql`update branches set name = 'Sucursal del futuro' where id = ${made.branches.id}`;
    await clinicNode.sql.begin(async (tx) => {
      await tx`set local session_replication_role = replica`;
      await tx`update branches set updated_at = '9999-12-31' where id = ${made.branches.id}`;
      await tx`update cv_sync.change_log set row_data = row_data || '{"updated_at": "9999-12-31T00:00:00+00:00"}'
        where row_id = ${made.branches.id} and seq = (select max(seq) from cv_sync.change_log where row_id = ${made.branches.id})`;
    });
    // The clock is right again; a later edit is still stamped above the floor.
    const later = consultation().branches;
    await insert(clinicNode.sql, "branches", later);
    expect((await failure(() => sync(clinicNode, cloud))).code).toBe("CV009");
    expect(await rowOf(cloud.sql, "branches", later.id)).toBeUndefined();

    const [restamped] = await clinicNode.sql<{ n: string }[]>`select cv_sync_restamp_ahead()::text as n`;
    expect(Number(restamped?.n)).toBe(2);
    expect(await floorOf(clinicNode)).toBeLessThanOrEqual(Date.now());
    const [row] = await clinicNode.sql<{ updated_at: Date; hlc: string }[]>`
      select b.updated_at, s.hlc from branches b join cv_sync.row_state s on s.table_name = 'branches' and s.row_id = b.id
      where b.id = ${made.branches.id}`;
    expect(row?.updated_at.getTime()).toBeLessThanOrEqual(Date.now());
    expect(Number(row?.hlc.slice(0, 15))).toBeLessThanOrEqual(Date.now());
    const stamps = await clinicNode.sql<{ hlc: string }[]>`
      select hlc from cv_sync.change_log where row_id in (${made.branches.id}, ${later.id}) order by txid, seq`;
    expect(stamps.map((s) => s.hlc)).toEqual([...stamps.map((s) => s.hlc)].sort());
    // Nothing is ahead any more: a second call changes nothing, and the push goes through.
    const [again] = await clinicNode.sql<{ n: string }[]>`select cv_sync_restamp_ahead()::text as n`;
    expect(again?.n).toBe("0");
    await sync(clinicNode, cloud);
    expect(await rowOf(cloud.sql, "branches", made.branches.id)).toMatchObject({
      name: "Sucursal del futuro",
    });
    expect(await rowOf(cloud.sql, "branches", later.id)).toBeDefined();
    // A later edit on the cloud wins over it as the later one, as it is.
    await cloud.sql`update branches set name = 'Sucursal del presente' where id = ${made.branches.id}`;
    await sync(cloud, clinicNode);
    expect(await rowOf(clinicNode.sql, "branches", made.branches.id)).toMatchObject({
      name: "Sucursal del presente",
    });
  });
});

describe("a local insert", () => {
  it("is stamped with the server's time, whatever created_at and updated_at the writer sent", async () => {
    const row = {
      ...consultation().branches,
      created_at: "2099-01-01T00:00:00Z",
      updated_at: "2099-01-01T00:00:00Z",
    };
    await insert(clinicNode.sql, "branches", row);
    const [stored] = await clinicNode.sql<{ created_at: Date; updated_at: Date; hlc: string }[]>`
      select b.created_at, b.updated_at, s.hlc from branches b
      join cv_sync.row_state s on s.table_name = 'branches' and s.row_id = b.id where b.id = ${row.id}`;
    for (const at of [stored?.created_at, stored?.updated_at])
      expect(Math.abs((at?.getTime() ?? 0) - Date.now())).toBeLessThan(60_000);
    expect(Number(stored?.hlc.split(".")[0])).toBeLessThan(Date.now() + 60_000);
  });
});
