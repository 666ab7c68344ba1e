import { consultation, insertConsultation, patient } from "@centrovision/testkit/nodes";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SyncProgress } from "../src/index.js";
import { PageSizer } from "../src/internal/page-sizer.js";
import { checksums, createSyncPair, type SyncPair } from "./support/sync-pair.js";

describe("PageSizer", () => {
  it("halves after a slow page, grows back by doubling after fast full pages, never past the maximum", () => {
    const pages = new PageSizer(1_000, 400);
    pages.record(401, true);
    expect(pages.size).toBe(500);
    pages.record(150, true);
    expect(pages.size).toBe(500);
    pages.record(20, false);
    expect(pages.size).toBe(500);
    pages.record(20, true);
    pages.record(20, true);
    pages.record(20, true);
    expect(pages.size).toBe(1_000);
  });

  it("shrinks after a cancelled page down to one item, then gives up", () => {
    const pages = new PageSizer(3, 400);
    expect([pages.shrink(), pages.shrink(), pages.shrink()]).toEqual([1, undefined, undefined]);
  });
});

/**
 * Every row written to patients on `sql`'s database takes 2 ms, and `role`'s statements there are
 * cancelled after 400 ms: a write of 200 rows or more can never fit. Both go with the database.
 */
async function slowDown(sql: SyncPair["cloud"]["sql"], role: string, database: string): Promise<void> {
  await sql.unsafe(`
    create function public.test_slow_row() returns trigger language plpgsql set search_path = '' as
      $$ begin perform pg_catalog.pg_sleep(0.002); return new; end $$;
    create trigger test_slow_row before insert on public.patients
      for each row execute function public.test_slow_row();
    alter role ${role} in database "${database}" set statement_timeout = '400ms';`);
}

describe("a cloud that cancels slow statements (statement_timeout)", () => {
  let pair: SyncPair;
  let branchId: string;

  beforeAll(async () => {
    pair = await createSyncPair();
    const base = consultation();
    branchId = base.branches.id;
    await insertConsultation(pair.cloud.sql, base);
    await pair.engine().syncNow();
    await slowDown(pair.cloud.sql, "service_role", new URL(pair.cloud.supabase.dbUrl).pathname.slice(1));
    await pair.cloud.supabase.reloadSchema();
  });

  afterAll(() => pair.close());

  it("retries a cancelled page at half the size at once, and the cycle converges without an error", async () => {
    await pair.clinic.sql.begin(async (tx) => {
      for (let i = 0; i < 600; i++) await tx`insert into patients ${tx(patient(branchId, `Lento ${i}`))}`;
    });
    const engine = pair.engine({ pageBudgetMs: 300 });
    const pushed: SyncProgress[] = [];
    engine.progress$.subscribe((p) => {
      if (p.direction === "push" && p.event === "applied") pushed.push(p);
    });
    const status = await engine.syncNow();
    expect(status.lastError).toBeNull();
    expect(pushed.reduce((sum, p) => sum + p.pageRows, 0)).toBe(600);
    expect(Math.max(...pushed.map((p) => p.pageRows))).toBeLessThan(200);
    expect(await checksums(pair.cloud.sql)).toEqual(await checksums(pair.clinic.sql));
  });
});

describe("a clinic server that cancels slow statements during the initial copy", () => {
  let pair: SyncPair;

  beforeAll(async () => {
    pair = await createSyncPair();
    const base = consultation();
    await insertConsultation(pair.cloud.sql, base);
    await pair.cloud.sql.begin(async (tx) => {
      for (let i = 0; i < 600; i++)
        await tx`insert into patients ${tx(patient(base.branches.id, `Copia ${i}`))}`;
    });
    await slowDown(pair.clinic.sql, new URL(pair.clinic.url).username, pair.clinic.database);
  });

  afterAll(() => pair.close());

  it("copies in pages that fit, shrinking after each cancelled one, and converges", async () => {
    const engine = pair.engine({ snapshotPageSize: 2_000, pageBudgetMs: 300 });
    const copied: SyncProgress[] = [];
    engine.progress$.subscribe((p) => {
      if (p.stage === "snapshot" && p.event === "applied" && p.table === "patients") copied.push(p);
    });
    const status = await engine.syncNow();
    expect(status.lastError).toBeNull();
    expect(copied.reduce((sum, p) => sum + p.pageRows, 0)).toBe(601);
    expect(Math.max(...copied.map((p) => p.pageRows))).toBeLessThan(200);
    expect(await checksums(pair.cloud.sql)).toEqual(await checksums(pair.clinic.sql));
  });
});
