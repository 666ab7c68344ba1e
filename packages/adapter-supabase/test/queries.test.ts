import { randomUUID } from "node:crypto";
import { type DataSource, type Row, tables } from "@centrovision/core";
import { createFixtures } from "@centrovision/testkit/contract";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSupabaseSource } from "../src/index.js";
import { type LocalCloud, startLocalCloud } from "./support/local-cloud.js";

// Names PostgREST's `in.(…)` grammar treats specially: commas, parentheses, quotes, backslashes.
const AWKWARD = ['O"Brien', '"Quoted"', "Ruiz, Ana", "Paz (hija)", "back\\slash", "d'Amico", "Peña+Núñez"];
const fixtures = createFixtures();
let cloud: LocalCloud;
let source: DataSource;
let paged: DataSource;
let rows: Row<"patients">[];

beforeAll(async () => {
  cloud = await startLocalCloud();
  const key = cloud.stack.serviceRoleKey;
  source = createSupabaseSource({ url: cloud.stack.url, key });
  // A page of 3 rows makes every list below cross page boundaries.
  paged = createSupabaseSource({ url: cloud.stack.url, key, pageSize: 3 });
  const branch = await source.table("branches").insert(fixtures.branch());
  rows = await source
    .table("patients")
    .upsertMany(AWKWARD.map((last_name) => fixtures.patient(branch.id, { last_name, document_id: null })));
});

afterAll(async () => {
  await source?.close();
  await paged?.close();
  await cloud?.stop();
});

const names = (list: Row<"patients">[]) => list.map((row) => row.last_name);

describe("filters with awkward values", () => {
  it("in and eq match exactly the values given, whatever characters they hold", async () => {
    const repo = source.table("patients");
    for (const name of AWKWARD) {
      expect(names(await repo.list({ where: { last_name: name } })), name).toEqual([name]);
      expect(names(await repo.list({ where: { last_name: { in: [name, "nadie"] } } })), name).toEqual([name]);
    }
    const all = await repo.list({ where: { last_name: { in: AWKWARD } } });
    expect(new Set(names(all))).toEqual(new Set(AWKWARD));
  });
});

describe("lists longer than a page", () => {
  it("reads page after page, in order, honouring limit and offset", async () => {
    const byName = { orderBy: [{ column: "last_name" as const }] };
    const expected = await source.table("patients").list(byName);
    expect(expected).toHaveLength(AWKWARD.length);
    const repo = paged.table("patients");
    expect(await repo.list(byName)).toEqual(expected);
    expect(await repo.list({ ...byName, limit: 5, offset: 1 })).toEqual(expected.slice(1, 6));
    expect(await repo.list({ ...byName, limit: 3, offset: 3 })).toEqual(expected.slice(3, 6));
    expect(await repo.list({ ...byName, offset: 6 })).toEqual(expected.slice(6));
    expect(await repo.list({ ...byName, offset: 7 })).toEqual([]);
  });

  it("one upsertMany is one request: a batch larger than a page is still all or nothing", async () => {
    const branchId = rows[0]?.branch_id as string;
    const batch = Array.from({ length: 7 }, () => fixtures.patient(branchId, { document_id: null }));
    const bad = [...batch, fixtures.patient(randomUUID(), { document_id: null })];
    await expect(paged.table("patients").upsertMany(bad)).rejects.toMatchObject({ code: "constraint" });
    expect(await cloud.probe.row("patients", batch[0]?.id as string)).toBeNull();
    const written = await paged
      .table("patients")
      .upsertMany([...batch, { ...batch[0], first_name: "Rocío" } as never]);
    expect(written.map((row) => row.id)).toEqual([...batch.map((row) => row.id), batch[0]?.id]);
    expect(written[0]?.first_name).toBe("Rocío");
  });
});

describe("rows as they come back", () => {
  it("every row of a list equals the database's row through the full schema parse", async () => {
    const listed = await source.table("patients").list();
    expect(listed.length).toBeGreaterThan(1);
    for (const row of listed) {
      expect(row).toEqual(tables.patients.rowSchema.parse(await cloud.probe.row("patients", row.id)));
      expect(row.created_at).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    }
  });

  // Last in the file: an enum label cannot be dropped again.
  it("a later row that drifted (an enum label the cloud added) is schema drift, naming the field", async () => {
    const branchId = rows[0]?.branch_id as string;
    const patientId = rows[0]?.id as string;
    const ok = fixtures.appointment(
      { branchId, patientId },
      { starts_at: "2026-12-01T15:00:00Z", ends_at: "2026-12-01T15:30:00Z" },
    );
    await source.table("appointments").insert(ok);
    await cloud.sql`alter type public.appointment_type add value 'telemedicine'`;
    const odd = fixtures.appointment(
      { branchId, patientId },
      { starts_at: "2026-12-02T15:00:00Z", ends_at: "2026-12-02T15:30:00Z" },
    );
    await cloud.sql`insert into appointments ${cloud.sql({ ...odd, type: "telemedicine" } as Record<string, unknown>)}`;
    const error = await source
      .table("appointments")
      .list({ orderBy: [{ column: "starts_at" }] })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "unknown", issues: [{ path: "type" }] });
    expect(String((error as Error).message)).toContain("do not match this version's schema (type)");
  });
});
