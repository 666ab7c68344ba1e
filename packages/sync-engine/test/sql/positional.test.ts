import { randomBytes, randomUUID } from "node:crypto";
import { SYNCED_TABLES } from "@centrovision/core";
import {
  consultation,
  createNode,
  failureCode,
  insert,
  insertConsultation,
  patient,
  remove,
  type SqlNode,
  update,
} from "@centrovision/testkit/nodes";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DEFLATED_MAX_BYTES, deflatedMessage } from "../../src/internal/deflated.js";
import { positionalBatch } from "../../src/internal/positional.js";
import { createRpcPeer } from "../../src/internal/rpc-peer.js";
import type { SyncChange } from "../../src/sync-types.js";
import {
  apply,
  type Change,
  expectConverged,
  identity,
  json,
  pull,
  storedCursor,
  UNUSUAL_TEXT,
} from "../support/sql-sync.js";

/*
 * The positional batch (sql/functions/08_positional.sql): what the engine sends a node whose
 * cv_sync_apply lists it. Expanded on the target it is the array of changes it replaces, so every
 * value of every column type arrives as it left; a malformed one is refused whole. The same for
 * the deflated batch (sql/functions/09_deflated.sql), which carries it compressed.
 */

let cloud: SqlNode;
let clinicNode: SqlNode;
beforeEach(async () => {
  [cloud, clinicNode] = await Promise.all([createNode("cloud"), createNode("clinic")]);
});
afterEach(async () => {
  await Promise.all([cloud?.drop(), clinicNode?.drop()]);
});

/** Every synced table's nullable columns, but those the row-version trigger stamps. */
async function nullableColumns(node: SqlNode): Promise<Map<string, string[]>> {
  const found = await node.sql<{ table_name: string; columns: string[] }[]>`
    select c.table_name, array_agg(c.column_name::text order by c.ordinal_position) as columns
    from information_schema.columns c
    where c.table_schema = 'public' and c.table_name = any(${SYNCED_TABLES as string[]})
      and c.is_nullable = 'YES' and c.column_name <> all(cv_sync.meta_columns())
    group by c.table_name`;
  return new Map(found.map((t) => [t.table_name, t.columns]));
}

/**
 * Two consultations on the cloud: one with every column filled and text, times and numbers in
 * their unusual forms, one with every nullable column null; then an update and a delete.
 */
async function writeEverything(node: SqlNode): Promise<void> {
  const full = consultation();
  full.patients.notes = UNUSUAL_TEXT;
  full.patients.address = "\\";
  full.patients.birth_date = "1900-01-31";
  full.appointments.starts_at = "2025-03-13T09:00:00.123456-06:00";
  full.appointments.ends_at = "2025-03-13T21:30:00.999+05:45";
  full.appointments.notes = '"';
  full.encounters.ended_at = "2025-03-03T10:15:30.000001-06:00";
  full.exam_eye.refraction_sphere = -20.0;
  full.exam_eye.refraction_cylinder = 0;
  full.exam_eye.uncorrected_va_logmar = -0.3;
  full.exam_eye.iop_mmhg = 79.9;
  await insertConsultation(node.sql, full);
  const empty = consultation();
  await insertConsultation(node.sql, empty);
  for (const [table, columns] of await nullableColumns(node)) {
    await update(
      node.sql,
      table as (typeof SYNCED_TABLES)[number],
      empty[table as (typeof SYNCED_TABLES)[number]].id,
      Object.fromEntries(columns.map((column) => [column, null])),
    );
  }
  await update(node.sql, "patients", full.patients.id, { phone: "55 0000 1111", allergies: "Ninguna ✓" });
  const gone = patient(full.branches.id, "Baja");
  await insert(node.sql, "patients", gone);
  await remove(node.sql, "patients", gone.id);
}

/** Each synced table's rows in PostgreSQL's own text form, by id: equal only if every value is. */
async function rowTexts(node: SqlNode): Promise<Record<string, string[]>> {
  const result: Record<string, string[]> = {};
  for (const table of SYNCED_TABLES) {
    const rows = await node.sql<{ text: string }[]>`
      select t::text as text from ${node.sql(table)} t order by t.id`;
    result[table] = rows.map((row) => row.text);
  }
  return result;
}

/** What collapse() makes of `changes`: one change per row, as the apply goes on with them. */
const collapsed = async (node: SqlNode, changes: unknown) =>
  (
    await node.sql<
      { changes: unknown }[]
    >`select to_jsonb(cv_sync.collapse(${json(node.sql, changes)})) as changes`
  )[0]?.changes;

describe("the positional batch", () => {
  it("round-trips every column type of every synced table exactly, nulls, times and text of every Unicode plane", async () => {
    await writeEverything(cloud);
    const expected = await storedCursor(clinicNode, cloud);
    const page = await pull(cloud, clinicNode, expected);
    const tables = new Set(page.changes.map((change) => change.table));
    expect([...tables].sort()).toEqual([...SYNCED_TABLES].sort());
    expect(page.changes.map((change) => change.op)).toContain("delete");
    const batch = positionalBatch(page.changes as unknown as SyncChange[]);
    expect(batch?.format).toBe("positional");
    expect(
      await apply(clinicNode, await identity(cloud), expected, { ...page, changes: batch as never }),
    ).toMatchObject({
      status: "applied",
      applied: 2 * SYNCED_TABLES.length + 1,
      conflicts: 0,
    });
    await expectConverged(cloud, clinicNode);
    expect(await rowTexts(clinicNode)).toEqual(await rowTexts(cloud));
    const states = (node: SqlNode) =>
      node.sql`select table_name, row_id, version, hlc, origin, deleted from cv_sync.row_state order by table_name, row_id`;
    expect(await states(clinicNode)).toEqual(await states(cloud));
    // Every nullable column went null, and every column type went filled.
    const nullable = await nullableColumns(clinicNode);
    const filledTypes = new Set<string>();
    const columns = await clinicNode.sql<{ table_name: string; column_name: string; udt_name: string }[]>`
      select table_name, column_name, udt_name from information_schema.columns
      where table_schema = 'public' and table_name = any(${SYNCED_TABLES as string[]})`;
    for (const { table_name: table, column_name: column, udt_name: type } of columns) {
      const [seen] = await clinicNode.sql<{ nulls: number; values: number }[]>`
        select count(*) filter (where t.${clinicNode.sql(column)} is null)::int as nulls,
          count(*) filter (where t.${clinicNode.sql(column)} is not null)::int as values
        from ${clinicNode.sql(table)} t`;
      if (nullable.get(table)?.includes(column)) expect(seen?.nulls, `${table}.${column}`).toBeGreaterThan(0);
      if ((seen?.values ?? 0) > 0) filledTypes.add(type);
    }
    expect([...filledTypes].sort()).toEqual([...new Set(columns.map((c) => c.udt_name))].sort());
  });

  it("is read as the very array of changes it replaces, and is about half its size", async () => {
    await writeEverything(cloud);
    const page = await pull(cloud, clinicNode, { txid: 0, seq: 0 });
    const [nurse, doctor] = [
      { user: crypto.randomUUID(), node: cloud.id, sign_in: "online", device: "recepcion-1" },
      { user: crypto.randomUUID(), node: cloud.id, sign_in: "clinic" },
    ];
    const changes: Change[] = page.changes.map((change, i) => ({
      ...change,
      author: [nurse, doctor, null][i % 3],
      resolves: i === 4 ? crypto.randomUUID() : change.resolves,
    }));
    const batch = positionalBatch(changes as unknown as SyncChange[]);
    expect(batch?.authors).toEqual([nurse, doctor]);
    const fromArray = await collapsed(cloud, changes);
    expect(fromArray).toHaveLength(2 * SYNCED_TABLES.length + 1);
    expect(await collapsed(cloud, batch)).toEqual(fromArray);
    expect(JSON.stringify(batch).length).toBeLessThan(JSON.stringify(changes).length * 0.6);
    // A row of more than 100 columns: its object is built from three jsonb_build_object calls.
    const wide = changes.map((change) =>
      change.row === null
        ? change
        : {
            ...change,
            row: {
              ...change.row,
              ...Object.fromEntries(Array.from({ length: 120 }, (_, n) => [`x${n}`, n])),
            },
          },
    );
    expect((positionalBatch(wide as unknown as SyncChange[])?.tables[0]?.columns.length ?? 0) > 100).toBe(
      true,
    );
    expect(await collapsed(cloud, positionalBatch(wide as unknown as SyncChange[]))).toEqual(
      await collapsed(cloud, wide),
    );
  });

  it("is refused with what is wrong, never the values, which may be a patient's", async () => {
    await writeEverything(cloud);
    const page = await pull(cloud, clinicNode, { txid: 0, seq: 0 });
    const at = page.changes.findIndex((change) => change.table === "patients" && change.op === "upsert");
    const secret = "Zacarías Confidencial";
    const damaged = (damage: (change: Change) => Change) =>
      page.changes.map((change, i) => (i === at ? damage(change) : change));
    const cases = [
      // Not a valid change: its row names another id.
      damaged((change) => ({
        ...change,
        row: { ...change.row, id: crypto.randomUUID(), first_name: secret },
      })),
      // Malformed: a version no uuid reads (the error PostgreSQL raises quotes it).
      damaged((change) => ({ ...change, version: secret })),
    ];
    for (const changes of cases) {
      // The positional batch cannot carry a row of another id: the array form alone then.
      const positional = positionalBatch(changes as unknown as SyncChange[]);
      for (const form of positional ? [changes, positional] : [changes]) {
        const error = await collapsed(cloud, form).then(
          () => undefined,
          (failure: { code?: string; message?: string }) => failure,
        );
        expect(error?.code).toBe("CV005");
        expect(error?.message).toMatch(/nothing was applied/);
        expect(error?.message).not.toContain("Zacar");
      }
    }
  });

  it("is not made when a change has a field it does not carry, or a row id or origin it could not derive", () => {
    const change = {
      table: "patients",
      row_id: "3f0b8e47-3ad4-4b43-9d50-1f7d5fb6a8f1",
      op: "upsert",
      row: { id: "3f0b8e47-3ad4-4b43-9d50-1f7d5fb6a8f1", first_name: "Ana" },
      version: "0c4cbb6e-b7cc-4e65-b5cb-0fa0f5fc2a44",
      base_version: null,
      origin: "8d1e6c1c-0a3f-4f5e-8a57-3a0f3c1b7e10",
      hlc: "001764990000000.0000000001.8d1e6c1c-0a3f-4f5e-8a57-3a0f3c1b7e10",
      changed_columns: null,
      txid: 7,
      seq: 1,
    } as unknown as SyncChange;
    expect(positionalBatch([change])?.changes).toEqual([
      [0, "upsert", [change.row_id, "Ana"], change.version, null, change.hlc, null, null, null, 1],
    ]);
    expect(positionalBatch([{ ...change, priority: 1 } as SyncChange])).toBeUndefined();
    expect(positionalBatch([{ ...change, row_id: change.version }])).toBeUndefined();
    expect(positionalBatch([{ ...change, origin: change.version }])).toBeUndefined();
    expect(positionalBatch([])).toBeUndefined();
  });

  it("is refused whole when malformed (CV005), nothing written", async () => {
    await writeEverything(cloud);
    const expected = await storedCursor(clinicNode, cloud);
    const page = await pull(cloud, clinicNode, expected);
    const good = positionalBatch(page.changes as unknown as SyncChange[]);
    if (good === undefined) throw new Error("no positional batch");
    const source = await identity(cloud);
    const damaged = (change: (batch: Record<string, unknown> & typeof good) => unknown) =>
      change(structuredClone(good) as Record<string, unknown> & typeof good);
    const entry = (batch: typeof good, i: number) => batch.changes[i] as unknown[];
    const cases = [
      damaged(({ tables: _, ...batch }) => batch),
      damaged((batch) => ({ ...batch, changes: {} })),
      damaged((batch) => ({ ...batch, authors: "nobody" })),
      damaged((batch) => ({ ...batch, tables: [] })),
      damaged((batch) => {
        entry(batch, 3)[0] = 99;
        return batch;
      }),
      damaged((batch) => {
        entry(batch, 3)[0] = -1;
        return batch;
      }),
      damaged((batch) => {
        entry(batch, 3)[0] = "patients";
        return batch;
      }),
      damaged((batch) => {
        (entry(batch, 3)[2] as unknown[]).pop();
        return batch;
      }),
      damaged((batch) => {
        entry(batch, 3)[2] = { id: page.changes[3]?.row_id };
        return batch;
      }),
      damaged((batch) => {
        entry(batch, 3)[8] = 0;
        return batch;
      }),
      damaged((batch) => {
        entry(batch, 3)[8] = -1;
        return { ...batch, authors: [{ user: crypto.randomUUID(), node: cloud.id }] };
      }),
      damaged((batch) => {
        entry(batch, 3).pop();
        return batch;
      }),
      damaged((batch) => ({ ...batch, changes: [...batch.changes, "upsert"] })),
      damaged((batch) => {
        const [first] = batch.tables;
        if (first) (first.columns as string[])[1] = first.columns[0] as string;
        return batch;
      }),
      damaged((batch) => {
        const [first] = batch.tables;
        if (first) (first.columns as unknown[])[1] = null;
        return batch;
      }),
      damaged((batch) => {
        entry(batch, 3)[5] = "yesterday";
        return batch;
      }),
    ];
    for (const [i, batch] of cases.entries()) {
      expect(
        await failureCode(() => apply(clinicNode, source, expected, { ...page, changes: batch as never })),
        `case ${i}`,
      ).toBe("CV005");
    }
    for (const table of SYNCED_TABLES) {
      const [held] = await clinicNode.sql<
        { n: number }[]
      >`select count(*)::int as n from ${clinicNode.sql(table)}`;
      expect(held?.n, table).toBe(0);
    }
    expect(await storedCursor(clinicNode, cloud)).toEqual(expected);
  });
});

/** `cv_sync_apply_deflated` on `target` with `body`, PostgREST's way: the body as its one bytea argument. */
async function applyDeflated(target: SqlNode, body: Uint8Array): Promise<Record<string, unknown>> {
  const [found] = await target.sql<{ result: Record<string, unknown> }[]>`
    select cv_sync_apply_deflated(${Buffer.from(body)}::bytea) as result`;
  return found?.result ?? {};
}

/** Everything written on the cloud, as cv_sync_apply's arguments for the clinic server, positional. */
async function everythingAsCall(): Promise<Record<string, unknown>> {
  await writeEverything(cloud);
  const expected = await storedCursor(clinicNode, cloud);
  const page = await pull(cloud, clinicNode, expected);
  return {
    p_source: await identity(cloud),
    p_expected: expected,
    p_cursor: page.cursor,
    p_changes: positionalBatch(page.changes as unknown as SyncChange[]),
  };
}

describe("the deflated batch", () => {
  it("is listed by cv_sync_node where pgcrypto decompresses, on both tiers", async () => {
    for (const node of [cloud, clinicNode]) {
      const [found] = await node.sql<
        { formats: string[] }[]
      >`select cv_sync_node() -> 'apply_formats' as formats`;
      expect(found?.formats).toEqual(["array", "positional", "deflated"]);
    }
  });

  it("round-trips every column type of every synced table exactly, in a third of the positional batch's bytes", async () => {
    const call = await everythingAsCall();
    const body = deflatedMessage(JSON.stringify(call));
    expect(body.length).toBeLessThan(JSON.stringify(call).length / 3);
    expect(await applyDeflated(clinicNode, body)).toMatchObject({
      status: "applied",
      applied: 2 * SYNCED_TABLES.length + 1,
      conflicts: 0,
    });
    await expectConverged(cloud, clinicNode);
    expect(await rowTexts(clinicNode)).toEqual(await rowTexts(cloud));
    // The same body again is the retry of a batch applied: a duplicate, nothing applied twice.
    expect(await applyDeflated(clinicNode, body)).toMatchObject({ status: "duplicate", applied: 0 });
  });

  it("carries the array when it fits, else the positional batch when that fits, else goes uncompressed", async () => {
    // New patients with notes that deflate poorly: as many as make the array's deflated batch
    // just too large for cv_sync_apply_deflated while the positional one still fits.
    const origin = randomUUID();
    const made = (n: number): SyncChange => {
      const id = randomUUID();
      const version = randomUUID();
      return {
        table: "patients",
        row_id: id,
        op: "upsert",
        row: {
          id,
          version,
          branch_id: origin,
          first_name: `Paciente ${n}`,
          notes: randomBytes(30).toString("base64"),
        },
        version,
        base_version: null,
        origin,
        hlc: `${String(1_765_000_000_000 + n).padStart(15, "0")}.0000000000.${origin}`,
        changed_columns: null,
        author: { user: origin, sign_in: "clinic", node: origin },
        txid: 1,
        seq: n + 1,
      };
    };
    const all = Array.from({ length: 4_000 }, (_, n) => made(n));
    const size = (changes: readonly SyncChange[], form: "array" | "positional") =>
      deflatedMessage(JSON.stringify({ p_changes: form === "array" ? changes : positionalBatch(changes) }))
        .length;
    let rows = 1_000;
    while (rows < all.length && size(all.slice(0, rows), "array") <= DEFLATED_MAX_BYTES) rows += 25;
    const between = all.slice(0, rows);
    expect(size(between, "positional")).toBeLessThanOrEqual(DEFLATED_MAX_BYTES - 1_000);
    /** What the peer sends for `changes`: the form inside its deflated body, or JSON. */
    const sentAs = async (changes: readonly SyncChange[]) => {
      const sent: string[] = [];
      const refuse = async () => {
        throw new Error("captured");
      };
      const peer = createRpcPeer(
        "cloud",
        async () => {
          sent.push("json");
          return refuse();
        },
        async () => {},
        async (_fn, body) => {
          const [opened] = await cloud.sql<{ form: string }[]>`
            select coalesce(c ->> 'format', jsonb_typeof(c)) as form
            from (select convert_from(cv_sync.inflate(${Buffer.from(body)}::bytea), 'UTF8')::jsonb -> 'p_changes' as c) x`;
          sent.push(`deflated ${opened?.form}`);
          return refuse();
        },
      );
      const cursor = { txid: 1, seq: 0 };
      await expect(
        peer.apply({
          source: { nodeId: randomUUID(), epoch: randomUUID(), fingerprint: {} },
          expected: cursor,
          cursor: { txid: 1, seq: changes.length },
          changes,
          positional: true,
          deflated: true,
        }),
      ).rejects.toThrow("captured");
      return sent;
    };
    expect(await sentAs(all.slice(0, 100))).toEqual(["deflated array"]);
    expect(await sentAs(between)).toEqual(["deflated positional"]);
    expect(await sentAs(all)).toEqual(["json"]);
  });

  it("is refused whole when it is not one (CV005), nothing written", async () => {
    const call = await everythingAsCall();
    const good = deflatedMessage(JSON.stringify(call));
    const flipped = Buffer.from(good);
    flipped[flipped.length - 30] = (flipped[flipped.length - 30] ?? 0) ^ 0x01;
    const cases = [
      Buffer.alloc(0),
      Buffer.from("{}"),
      good.subarray(0, -1),
      flipped,
      deflatedMessage("not json"),
      deflatedMessage("[1, 2]"),
      deflatedMessage(JSON.stringify({ ...call, p_changes: undefined })),
      deflatedMessage(JSON.stringify({ ...call, p_catchup: "yes" })),
      // A batch it would apply, but for its size: random text does not compress.
      deflatedMessage(JSON.stringify({ ...call, pad: randomBytes(DEFLATED_MAX_BYTES).toString("base64") })),
    ];
    for (const [i, body] of cases.entries()) {
      expect(await failureCode(() => applyDeflated(clinicNode, body)), `case ${i}`).toBe("CV005");
    }
    expect(await storedCursor(clinicNode, cloud)).toEqual(call.p_expected);
    const [held] = await clinicNode.sql<{ n: number }[]>`select count(*)::int as n from patients`;
    expect(held?.n).toBe(0);
  });
});
