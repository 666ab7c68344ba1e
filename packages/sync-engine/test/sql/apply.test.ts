import { randomUUID } from "node:crypto";
import {
  consultation,
  createNode,
  failureCode,
  insert,
  insertConsultation,
  patient,
  remove,
  rowOf,
  type SqlNode,
  update,
} from "@centrovision/testkit/nodes";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  apply,
  conflicts,
  digests,
  expectConverged,
  identity,
  json,
  movePage,
  type Page,
  pull,
  storedCursor,
  sync,
  syncBoth,
} from "../support/sql-sync.js";
import { createSyncPair } from "../support/sync-pair.js";

/* cv_sync_apply (PROTOCOL.md "Apply"): one idempotent transaction per page, FK-safe, no echo. */

let cloud: SqlNode;
let clinicNode: SqlNode;
beforeAll(async () => {
  [cloud, clinicNode] = await Promise.all([createNode("cloud"), createNode("clinic")]);
});
afterAll(async () => {
  await Promise.all([cloud?.drop(), clinicNode?.drop()]);
});

/** Resolves once a session of `node` waits for a lock (an apply blocked on a concurrent write). */
async function waitForLockWait(node: SqlNode): Promise<void> {
  for (let i = 0; i < 500; i++) {
    const [found] = await node.sql<{ n: number }[]>`
      select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`;
    if (found?.n) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error("no session of the node waited for a lock within 5 s");
}

/**
 * Resolves once a session of `node` other than this test's runs cv_sync_apply and has begun to
 * write (it has a transaction id: it took the source's cursor, cv_sync.lock_peer).
 */
async function waitForWriting(node: SqlNode): Promise<void> {
  for (let i = 0; i < 500; i++) {
    const [found] = await node.sql<{ n: number }[]>`
      select count(*)::int as n from pg_stat_activity
      where datname = current_database() and query like '%cv_sync_apply(%' and backend_xid is not null
        and pid <> pg_backend_pid()`;
    if (found?.n) return;
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  throw new Error("no session of the node began to write in cv_sync_apply within 1 s");
}

async function logSize(node: SqlNode): Promise<number> {
  const [found] = await node.sql<{ n: number }[]>`select count(*)::int as n from cv_sync.change_log`;
  return found?.n ?? 0;
}

describe("cv_sync_apply", () => {
  it("applies a page in foreign-key order, parents and children of one transaction together", async () => {
    const rows = consultation();
    await insertConsultation(cloud.sql, rows);
    await sync(cloud, clinicNode);
    expect(await rowOf(clinicNode.sql, "diagnoses", rows.diagnoses.id)).toEqual(
      await rowOf(cloud.sql, "diagnoses", rows.diagnoses.id),
    );
    await expectConverged(cloud, clinicNode);
  });

  it("answers the same page twice with duplicate, changing nothing", async () => {
    await insertConsultation(cloud.sql, consultation());
    const expected = await storedCursor(clinicNode, cloud);
    const page = await pull(cloud, clinicNode, expected);
    const source = await identity(cloud);
    expect(await apply(clinicNode, source, expected, page)).toMatchObject({ status: "applied", applied: 10 });
    const [before, entries] = [await digests(clinicNode), await logSize(clinicNode)];
    expect(await apply(clinicNode, source, expected, page)).toMatchObject({
      status: "duplicate",
      applied: 0,
    });
    expect([await digests(clinicNode), await logSize(clinicNode)]).toEqual([before, entries]);
  });

  it("reads a batch before it waits for the source's cursor, which another apply holds: a malformed one is refused at once, a good one waits its turn", async () => {
    await sync(cloud, clinicNode);
    const source = await identity(cloud);
    const expected = await storedCursor(clinicNode, cloud);
    await insertConsultation(cloud.sql, consultation());
    const page = await pull(cloud, clinicNode, expected);
    let release = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let locked = () => {};
    const lockTaken = new Promise<void>((resolve) => {
      locked = resolve;
    });
    const holding = clinicNode.sql.begin(async (tx) => {
      await tx`select from cv_sync.peers where peer_id = ${source.node_id as string} for update`;
      locked();
      await held;
    });
    await lockTaken;
    const malformed = [{ ...page.changes[0], version: "not a uuid" }];
    const refused = await Promise.race([
      failureCode(() => apply(clinicNode, source, expected, { ...page, changes: malformed as never })),
      new Promise((resolve) => setTimeout(() => resolve("still waiting after 3 s"), 3_000)),
    ]);
    const good = apply(clinicNode, source, expected, page);
    await waitForLockWait(clinicNode);
    release();
    await holding;
    expect(refused).toBe("CV005");
    expect(await good).toMatchObject({ status: "applied" });
    await expectConverged(cloud, clinicNode);
  });

  it("refuses a page pulled from a cursor this node has moved past (CV003)", async () => {
    await sync(cloud, clinicNode);
    const stale = await storedCursor(clinicNode, cloud);
    await insert(cloud.sql, "branches", consultation().branches);
    await sync(cloud, clinicNode);
    await insert(cloud.sql, "branches", consultation().branches);
    const page = await pull(cloud, clinicNode, stale);
    expect(await failureCode(() => apply(clinicNode, {}, stale, page))).toBe("CV005");
    expect(await failureCode(async () => apply(clinicNode, await identity(cloud), stale, page))).toBe(
      "CV003",
    );
  });

  it("does not send applied changes back: a round trip settles and the logs stop growing", async () => {
    const rows = consultation();
    await insertConsultation(clinicNode.sql, rows);
    await update(clinicNode.sql, "patients", rows.patients.id, { phone: "55 8765 4321" });
    await syncBoth(cloud, clinicNode);
    const sizes = [await logSize(cloud), await logSize(clinicNode)];
    await syncBoth(cloud, clinicNode);
    expect((await movePage(cloud, clinicNode)).page.changes).toEqual([]);
    expect((await movePage(clinicNode, cloud)).page.changes).toEqual([]);
    expect([await logSize(cloud), await logSize(clinicNode)]).toEqual(sizes);
    await expectConverged(cloud, clinicNode);
  });

  it("keeps a row created and deleted before a sync away from the peer, with a tombstone", async () => {
    const row = consultation().branches;
    await insert(clinicNode.sql, "branches", row);
    await update(clinicNode.sql, "branches", row.id, { name: "Temporal" });
    await clinicNode.sql`delete from branches where id = ${row.id}`;
    await sync(clinicNode, cloud);
    expect(await rowOf(cloud.sql, "branches", row.id)).toBeUndefined();
    const [state] = await cloud.sql`select deleted from cv_sync.row_state where row_id = ${row.id}`;
    expect(state).toEqual({ deleted: true });
    await expectConverged(cloud, clinicNode);
  });

  it("retries with a larger page when a child's transaction id is lower than its parent's (23503)", async () => {
    await sync(cloud, clinicNode);
    const rows = consultation();
    const t1 = await cloud.sql.reserve();
    try {
      await t1`begin`;
      await insert(t1, "branches", rows.branches); // T1 takes the lower transaction id
      await insert(cloud.sql, "profiles", rows.profiles); // T2: the parent, committed first
      await insert(t1, "user_branches", rows.user_branches); // T1: the child
      await t1`commit`;
    } finally {
      t1.release();
    }
    expect(await failureCode(() => movePage(cloud, clinicNode, 2))).toBe("23503");
    await sync(cloud, clinicNode, 2);
    expect(await rowOf(clinicNode.sql, "user_branches", rows.user_branches.id)).toBeDefined();
    await expectConverged(cloud, clinicNode);
  });

  it("orders one node's changes by HLC when a lower transaction id committed later, without a conflict", async () => {
    const row = consultation().branches;
    await insert(cloud.sql, "branches", row);
    await sync(cloud, clinicNode);
    const t1 = await cloud.sql.reserve();
    try {
      await t1`begin`;
      await insert(t1, "rooms", { ...consultation().rooms, branch_id: row.id }); // T1 takes the lower id
      await update(cloud.sql, "branches", row.id, { name: "Primera" }); // T2 commits first
      await t1`update branches set name = 'Segunda' where id = ${row.id}`; // T1 edits after T2
      await t1`commit`;
    } finally {
      t1.release();
    }
    await sync(cloud, clinicNode, 1); // T1's page, then T2's (older) page
    expect(await rowOf(clinicNode.sql, "branches", row.id)).toMatchObject({ name: "Segunda" });
    expect(await conflicts(clinicNode, null)).toEqual([]);
    await expectConverged(cloud, clinicNode);
  });
});

describe("apply and the rest of the transaction", () => {
  it("stops with CV004 on the same patient registered on both sides, until a person fixes one", async () => {
    const shared = consultation();
    await insert(cloud.sql, "branches", shared.branches);
    await sync(cloud, clinicNode);
    const document = `DUP${shared.branches.id.slice(0, 8).toUpperCase()}`;
    const first = { ...shared.patients, document_id: document };
    const second = { ...consultation().patients, branch_id: shared.branches.id, document_id: document };
    await insert(cloud.sql, "patients", first);
    await insert(clinicNode.sql, "patients", second);
    const error = await sync(clinicNode, cloud).catch((e: Error & { code?: string }) => e);
    expect(error).toMatchObject({ code: "CV004", message: expect.stringContaining("document_id") });
    await update(clinicNode.sql, "patients", second.id, { document_id: `${document}-2` });
    await syncBoth(cloud, clinicNode);
    await expectConverged(cloud, clinicNode);
  });

  it("applies a transaction that swapped two patients' document numbers and two rooms' names, which no row-by-row order passes", async () => {
    const shared = consultation();
    await insertConsultation(cloud.sql, shared);
    const tag = shared.branches.id.slice(0, 8).toUpperCase();
    const other = { ...consultation().patients, branch_id: shared.branches.id, document_id: `SWAP-${tag}` };
    const room = { ...consultation().rooms, branch_id: shared.branches.id, name: "Consultorio 2" };
    await insert(cloud.sql, "patients", other);
    await insert(cloud.sql, "rooms", room);
    await sync(cloud, clinicNode);
    // As a person corrects them: one moved aside, the other moved over, the first put back.
    await cloud.sql.begin(async (tx) => {
      await tx`update patients set document_id = 'SWAP-ASIDE' where id = ${shared.patients.id}`;
      await tx`update patients set document_id = ${shared.patients.document_id as string} where id = ${other.id}`;
      await tx`update patients set document_id = ${other.document_id} where id = ${shared.patients.id}`;
      await tx`update rooms set name = 'Consultorio aparte' where id = ${shared.rooms.id}`;
      await tx`update rooms set name = ${shared.rooms.name as string} where id = ${room.id}`;
      await tx`update rooms set name = ${room.name} where id = ${shared.rooms.id}`;
    });
    // One page holds each row's last image only.
    expect(await sync(cloud, clinicNode)).toMatchObject({ pages: 1 });
    expect(await rowOf(clinicNode.sql, "patients", other.id)).toMatchObject({
      document_id: shared.patients.document_id,
    });
    expect(await rowOf(clinicNode.sql, "rooms", room.id)).toMatchObject({ name: shared.rooms.name });
    await expectConverged(cloud, clinicNode);
  });

  it("refuses a page whose new row was written here concurrently (40001), and its retry settles the conflict", async () => {
    await sync(cloud, clinicNode);
    const theirs = consultation().branches;
    const ours = { ...theirs, name: "Written here meanwhile" };
    await insert(cloud.sql, "branches", theirs);
    const expected = await storedCursor(clinicNode, cloud);
    const page = await pull(cloud, clinicNode, expected);
    const source = await identity(cloud);
    const local = await clinicNode.sql.reserve();
    try {
      await local`begin`;
      await insert(local, "branches", ours);
      // Classified absent (the local row is not committed), the insert waits on its id.
      const applying = failureCode(() => apply(clinicNode, source, expected, page));
      await waitForLockWait(clinicNode);
      await local`commit`;
      expect(await applying).toBe("40001");
    } finally {
      local.release();
    }
    expect(await storedCursor(clinicNode, cloud)).toEqual(expected);
    expect(await apply(clinicNode, source, expected, page)).toMatchObject({
      status: "applied",
      conflicts: 1,
    });
    await syncBoth(cloud, clinicNode);
    await expectConverged(cloud, clinicNode);
  });

  it("sets the sync flag for the apply only: a later write in the same transaction is captured", async () => {
    await sync(cloud, clinicNode);
    await insert(cloud.sql, "branches", consultation().branches);
    const expected = await storedCursor(clinicNode, cloud);
    const page = await pull(cloud, clinicNode, expected);
    const source = await identity(cloud);
    const local = consultation().branches;
    await clinicNode.sql.begin(async (tx) => {
      await tx`select cv_sync_apply(${json(tx, source)}, ${json(tx, expected)}, ${json(tx, page.cursor)},
        ${json(tx, page.changes)})`;
      await insert(tx, "branches", local);
    });
    const [entry] = await clinicNode.sql`select origin from cv_sync.change_log where row_id = ${local.id}`;
    expect(entry).toEqual({ origin: clinicNode.id });
    await syncBoth(cloud, clinicNode);
    await expectConverged(cloud, clinicNode);
  });
});

describe("peer identity", () => {
  it("stops with CV001 when the peer was re-initialised, and resumes after cv_sync_reset_peer", async () => {
    await sync(cloud, clinicNode);
    await cloud.sql`select cv_sync_init('cloud', true)`;
    await insert(cloud.sql, "branches", consultation().branches);
    expect(await failureCode(() => movePage(cloud, clinicNode))).toBe("CV001");
    await clinicNode.sql`select cv_sync_reset_peer(${cloud.id})`;
    await sync(cloud, clinicNode);
    await expectConverged(cloud, clinicNode);
  });

  it("refuses changes of a table whose schema drifted (CV002, naming it); other tables still sync", async () => {
    await sync(cloud, clinicNode);
    await clinicNode.sql`alter table rooms add column floor_number integer`;
    try {
      const room = {
        ...consultation().rooms,
        name: "Sala de drift",
        branch_id: (await clinicNode.sql`select id from branches limit 1`)[0]?.id,
      };
      await insert(cloud.sql, "rooms", room);
      const error = await movePage(cloud, clinicNode).catch((e: Error & { code?: string }) => e);
      expect(error).toMatchObject({ code: "CV002", message: expect.stringContaining("rooms") });
      await clinicNode.sql`alter table rooms drop column floor_number`;
      await sync(cloud, clinicNode);
      expect(await rowOf(clinicNode.sql, "rooms", room.id)).toBeDefined();
    } finally {
      await clinicNode.sql`alter table rooms drop column if exists floor_number`;
    }
  });
});

/**
 * A batch applied in a transaction that stays open, as an engine's batch still being written while
 * the next one is sent behind it: committed by `commit()`, rolled back by `rollback()`.
 */
async function applyHeld(target: SqlNode, source: Record<string, unknown>, expected: unknown, page: Page) {
  let settle: (commit: boolean) => void = () => {};
  const decided = new Promise<boolean>((resolve) => {
    settle = resolve;
  });
  let written: () => void = () => {};
  const applied = new Promise<void>((resolve) => {
    written = resolve;
  });
  const transaction = target.sql
    .begin(async (tx) => {
      await tx`select cv_sync_apply(${json(tx, source)}, ${json(tx, expected)}, ${json(tx, page.cursor)},
        ${json(tx, page.changes)})`;
      written();
      if (!(await decided)) throw new Error("rolled back");
    })
    .catch((error: Error) => {
      if (error.message !== "rolled back") throw error;
    });
  // A batch that fails instead of being held ends the wait with its error.
  await Promise.race([
    applied,
    transaction.then(() => Promise.reject(new Error("the batch in front was not held"))),
  ]);
  return {
    commit: () => {
      settle(true);
      return transaction;
    },
    rollback: () => {
      settle(false);
      return transaction;
    },
  };
}

describe("cv_sync_apply of a batch sent behind one still being applied", () => {
  /**
   * Two batches of the cloud's log for the clinic server: `first` written in one transaction,
   * `then` in the next, each batch one transaction (`firstSize`: as many changes as the first wrote).
   */
  async function twoBatches(first: () => Promise<unknown>, then: () => Promise<unknown>, firstSize = 1) {
    await sync(cloud, clinicNode);
    const expected = await storedCursor(clinicNode, cloud);
    await first();
    await then();
    const ahead = await pull(cloud, clinicNode, expected, firstSize);
    const behind = await pull(cloud, clinicNode, ahead.cursor, 1);
    expect(ahead.changes.length).toBeGreaterThan(0);
    expect(behind.changes.length).toBeGreaterThan(0);
    expect(behind.has_more).toBe(false);
    return { source: await identity(cloud), expected, ahead, behind };
  }

  /** Applies `behind` while `ahead` is held, then lets `ahead` commit; resolves with `behind`'s result. */
  async function behindOne(batches: Awaited<ReturnType<typeof twoBatches>>, node = clinicNode) {
    const { source, expected, ahead, behind } = batches;
    const held = await applyHeld(node, source, expected, ahead);
    const applying = apply(node, source, ahead.cursor, behind);
    await waitForLockWait(node);
    await held.commit();
    return applying;
  }

  it("on a clinic server, writes it before the batch ahead commits and keeps it when they share no row", async () => {
    const base = consultation();
    await insertConsultation(cloud.sql, base);
    const batches = await twoBatches(
      () => insert(cloud.sql, "patients", patient(base.branches.id, "Adelante")),
      () => insert(cloud.sql, "patients", patient(base.branches.id, "Detrás")),
    );
    expect(await behindOne(batches)).toMatchObject({ status: "applied", applied: 1, written_early: "kept" });
    await expectConverged(cloud, clinicNode);
  });

  it("writes it again after the batch ahead when it deleted a row that batch created (it had seen none)", async () => {
    const base = consultation();
    await insertConsultation(cloud.sql, base);
    const row = patient(base.branches.id, "Creado y borrado");
    const batches = await twoBatches(
      () => insert(cloud.sql, "patients", row),
      () => remove(cloud.sql, "patients", row.id),
    );
    expect(await behindOne(batches)).toMatchObject({ status: "applied", written_early: "again" });
    expect(await rowOf(clinicNode.sql, "patients", row.id)).toBeUndefined();
    await expectConverged(cloud, clinicNode);
  });

  it("writes it again after the batch ahead when it updates a row that batch created (40001 on its id)", async () => {
    const base = consultation();
    await insertConsultation(cloud.sql, base);
    const row = patient(base.branches.id, "Creado");
    const batches = await twoBatches(
      () => insert(cloud.sql, "patients", row),
      () => update(cloud.sql, "patients", row.id, { first_name: "Corregido" }),
    );
    expect(await behindOne(batches)).toMatchObject({
      status: "applied",
      conflicts: 0,
      written_early: "again",
    });
    expect(await rowOf(clinicNode.sql, "patients", row.id)).toMatchObject({ first_name: "Corregido" });
    await expectConverged(cloud, clinicNode);
  });

  it("writes it again after the batch ahead when a row of it references one that batch created (23503)", async () => {
    const base = consultation();
    await insertConsultation(cloud.sql, base);
    const parent = patient(base.branches.id, "Padre");
    const child = { ...base.appointments, id: randomUUID(), patient_id: parent.id };
    const batches = await twoBatches(
      () => insert(cloud.sql, "patients", parent),
      () => insert(cloud.sql, "appointments", child),
    );
    expect(await behindOne(batches)).toMatchObject({ status: "applied", applied: 1, written_early: "again" });
    await expectConverged(cloud, clinicNode);
  });

  it("waits for the batch ahead to raise the HLC floor, which that one holds from its start: no deadlock", async () => {
    const base = consultation();
    await insertConsultation(cloud.sql, base);
    const many = Array.from({ length: 3_000 }, (_, i) => patient(base.branches.id, `Adelante ${i}`));
    const { source, expected, ahead, behind } = await twoBatches(
      () =>
        cloud.sql.begin(async (tx) => {
          for (let i = 0; i < many.length; i += 500)
            await tx`insert into patients ${tx(many.slice(i, i + 500))}`;
        }),
      () => insert(cloud.sql, "patients", patient(base.branches.id, "Detrás")),
      many.length,
    );
    const deadlocks = async () => {
      const [found] = await clinicNode.sql<{ n: number }[]>`
        select deadlocks::int as n from pg_stat_database where datname = current_database()`;
      return found?.n ?? 0;
    };
    const before = await deadlocks();
    // The small batch behind is written while the large one in front is: it reaches the floor first.
    const writing = apply(clinicNode, source, expected, ahead);
    await waitForWriting(clinicNode);
    const results = await Promise.all([writing, apply(clinicNode, source, ahead.cursor, behind)]);
    expect(results).toMatchObject([{ status: "applied" }, { status: "applied", written_early: "kept" }]);
    await clinicNode.sql`select pg_stat_clear_snapshot()`;
    expect(await deadlocks()).toBe(before);
    await expectConverged(cloud, clinicNode);
  });

  it("refuses it (CV003) and writes none of it when the batch ahead rolls back", async () => {
    const base = consultation();
    await insertConsultation(cloud.sql, base);
    const rows = [patient(base.branches.id, "Adelante"), patient(base.branches.id, "Detrás")] as const;
    const { source, expected, ahead, behind } = await twoBatches(
      () => insert(cloud.sql, "patients", rows[0]),
      () => insert(cloud.sql, "patients", rows[1]),
    );
    const held = await applyHeld(clinicNode, source, expected, ahead);
    const applying = failureCode(() => apply(clinicNode, source, ahead.cursor, behind));
    await waitForLockWait(clinicNode);
    await held.rollback();
    expect(await applying).toBe("CV003");
    expect(await rowOf(clinicNode.sql, "patients", rows[1].id)).toBeUndefined();
    expect(await storedCursor(clinicNode, cloud)).toEqual(expected);
    await sync(cloud, clinicNode);
    await expectConverged(cloud, clinicNode);
  });

  it("on the cloud, waits for the batch ahead before writing (its scopes read other rows than the batch's)", async () => {
    const pair = await createSyncPair();
    try {
      const node = (name: string, id: string, sql: typeof pair.cloud.sql): SqlNode => ({
        name,
        id,
        url: "",
        sql,
        drop: async () => {},
      });
      const hosted = node("cloud", pair.cloud.nodeId, pair.cloud.sql);
      const clinic = node("clinic", pair.clinic.nodeId, pair.clinic.sql);
      const base = consultation();
      await insertConsultation(hosted.sql, base);
      await sync(hosted, clinic);
      await sync(clinic, hosted);
      const expected = await storedCursor(hosted, clinic);
      await insert(clinic.sql, "patients", patient(base.branches.id, "Adelante"));
      await insert(clinic.sql, "patients", patient(base.branches.id, "Detrás"));
      const ahead = await pull(clinic, hosted, expected, 1);
      const behind = await pull(clinic, hosted, ahead.cursor, 1);
      const result = await behindOne({ source: await identity(clinic), expected, ahead, behind }, hosted);
      expect(result).toMatchObject({ status: "applied", applied: 1 });
      expect(result).not.toHaveProperty("written_early");
      await expectConverged(hosted, clinic);
    } finally {
      await pair.close();
    }
  });
});
