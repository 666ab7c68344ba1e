import { createNode, type SqlNode } from "@centrovision/testkit/nodes";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/*
 * The schema fingerprint kept between migrations (sql/0017): pulls, pages and applies read the
 * kept copy instead of the catalog; a recorded migration makes it computed again at once, and DDL
 * run by hand is taken up by the next cv_sync_node().
 */

let node: SqlNode;
let consumer: string;
beforeAll(async () => {
  node = await createNode("fingerprint");
  consumer = crypto.randomUUID();
});
afterAll(async () => {
  await node?.drop();
});

type Fingerprint = Record<string, string>;

const fingerprint = async () =>
  (await node.sql<{ f: Fingerprint }[]>`select cv_sync.fingerprint() as f`)[0]?.f;
const computed = async () =>
  (await node.sql<{ f: Fingerprint }[]>`select cv_sync.compute_fingerprint() as f`)[0]?.f;
const nodeCall = async () =>
  (await node.sql<{ n: { fingerprint: Fingerprint } }[]>`select cv_sync_node() as n`)[0]?.n.fingerprint;

/**
 * Scans of pg_enum and pg_attribute (the table or one of its indexes) made by `work` run `times`
 * times in one transaction, after a first run there (which plans it: the planner reads the catalog).
 */
async function catalogScans(work: string, times: number): Promise<{ enum: number; attribute: number }> {
  return node.sql.begin(async (tx) => {
    const count = async () => {
      const [scans] = await tx<{ enum: number; attribute: number }[]>`
        with scans as (
          select c.oid as relid, pg_stat_get_xact_numscans(c.oid) as n from pg_class c
          where c.oid in ('pg_catalog.pg_enum'::regclass, 'pg_catalog.pg_attribute'::regclass)
          union all
          select i.indrelid, pg_stat_get_xact_numscans(i.indexrelid) from pg_index i
          where i.indrelid in ('pg_catalog.pg_enum'::regclass, 'pg_catalog.pg_attribute'::regclass)
        )
        select coalesce(sum(n) filter (where relid = 'pg_catalog.pg_enum'::regclass), 0)::int as enum,
               coalesce(sum(n) filter (where relid = 'pg_catalog.pg_attribute'::regclass), 0)::int as attribute
        from scans`;
      return scans ?? { enum: -1, attribute: -1 };
    };
    await tx.unsafe(work);
    const before = await count();
    for (let i = 0; i < times; i++) await tx.unsafe(work);
    const after = await count();
    return { enum: after.enum - before.enum, attribute: after.attribute - before.attribute };
  });
}

describe("the kept schema fingerprint", () => {
  it("is what the catalog says, and a pull, a pending count or cv_sync_node() reads no catalog for it", async () => {
    await nodeCall();
    expect(await fingerprint()).toEqual(await computed());
    expect(Object.keys((await fingerprint()) ?? {}).length).toBeGreaterThanOrEqual(10);
    // Computing it does scan: the counter works.
    expect((await catalogScans("select cv_sync.compute_fingerprint()", 1)).attribute).toBeGreaterThan(0);
    for (const call of [`select cv_sync_pull('${consumer}')`, `select cv_sync_pending('${consumer}')`]) {
      expect(await catalogScans(call, 20), call).toEqual({ enum: 0, attribute: 0 });
    }
    // An initial-sync page names its table's columns (one lookup), not the fingerprint's.
    expect(await catalogScans("select cv_sync_snapshot('patients')", 20)).toEqual({ enum: 0, attribute: 20 });
    // cv_sync_node() neither, while the event trigger keeps the copy; without it, it computes it.
    expect(await catalogScans("select cv_sync_node()", 20)).toEqual({ enum: 0, attribute: 0 });
    await node.sql`alter event trigger cv_sync_fingerprint disable`;
    try {
      expect((await catalogScans("select cv_sync_node()", 20)).attribute).toBeGreaterThan(0);
    } finally {
      await node.sql`alter event trigger cv_sync_fingerprint enable`;
    }
  });

  it("follows DDL run by hand at once (event trigger), a policy change, and a recorded migration", async () => {
    const before = await nodeCall();
    await node.sql`alter table public.patients add column nickname text`;
    const altered = await fingerprint();
    expect(altered?.patients).not.toBe(before?.patients);
    expect(altered?.appointments).toBe(before?.appointments);
    expect(altered).toEqual(await computed());
    await node.sql`alter table public.patients drop column nickname`;
    expect(await fingerprint()).toEqual(before);
    await node.sql`update cv_sync.synced_tables set policy = 'manual' where table_name = 'exam_eye'`;
    expect((await fingerprint())?.exam_eye).not.toBe(before?.exam_eye);
    await node.sql`update cv_sync.synced_tables set policy = 'lww' where table_name = 'exam_eye'`;
    expect(await fingerprint()).toEqual(before);
  });

  it("without the event trigger (a role that may not create one), DDL by hand waits for the next cv_sync_node(); a recorded migration does not", async () => {
    const before = await nodeCall();
    await node.sql`alter event trigger cv_sync_fingerprint disable`;
    try {
      await node.sql`alter table public.patients add column nickname text`;
      expect(await fingerprint()).toEqual(before);
      const after = await nodeCall();
      expect(after?.patients).not.toBe(before?.patients);
      expect(await fingerprint()).toEqual(after);
      // A migration (either route records itself in cv_meta.schema_migrations): computed at once.
      await node.sql.begin(async (tx) => {
        await tx`alter table public.patients drop column nickname`;
        await tx`insert into cv_meta.schema_migrations (name, checksum) values ('9999_test.sql', 'x')`;
      });
      expect(await fingerprint()).toEqual(before);
      expect(await nodeCall()).toEqual(before);
    } finally {
      await node.sql`alter event trigger cv_sync_fingerprint enable`;
      await node.sql`alter table public.patients drop column if exists nickname`;
    }
  });

  it("an apply checks the receiving node's schema from the catalog, whatever its kept copy says", async () => {
    await node.sql`alter event trigger cv_sync_fingerprint disable`;
    try {
      const source = await nodeCall();
      await node.sql`alter table public.rooms add column floor_number integer`;
      const failure =
        await node.sql`select cv_sync.check_fingerprint(${node.sql.json({ node_id: crypto.randomUUID(), fingerprint: source ?? {} })}, array['rooms'])`.catch(
          (error: { code?: string; message?: string }) => error,
        );
      expect(failure).toMatchObject({ code: "CV002", message: expect.stringContaining("rooms") });
    } finally {
      await node.sql`alter event trigger cv_sync_fingerprint enable`;
      await node.sql`alter table public.rooms drop column if exists floor_number`;
    }
  });
});
