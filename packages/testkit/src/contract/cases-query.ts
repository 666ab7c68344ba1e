import { randomUUID } from "node:crypto";
import type { NewRow } from "@centrovision/core";
import { expect } from "vitest";
import type { ContractContext } from "./describe-source-contract.js";

/** Spanish names chosen to exercise accents, ñ, ü and case in code-point order. */
const NAMES = ["Zúñiga", "Álvarez", "alvarez", "Ñúñez", "Nuñez", "Güemes", "Ortiz", "Ávila"];

/** Filters, ordering and paging, identical in every source. */
export function registerQueryCases(ctx: ContractContext): void {
  const { test, harness, fixtures } = ctx;
  const source = () => harness().source;

  async function seedPatients() {
    const branch = await source().table("branches").insert(fixtures.branch());
    const rows = NAMES.map((last_name, i) =>
      fixtures.patient(branch.id, {
        last_name,
        birth_date: `19${50 + i}-0${(i % 9) + 1}-15`,
        email: i % 2 === 0 ? `p${i}@correo.mx` : null,
      }),
    );
    await source().table("patients").upsertMany(rows);
    return { branch, rows };
  }

  test("get.missing", "a missing id is null, not an error", async () => {
    expect(await source().table("patients").get(randomUUID())).toBeNull();
  });

  test("list.filters", "eq, neq, in, ranges and null tests select the same rows everywhere", async () => {
    const { rows } = await seedPatients();
    const repo = source().table("patients");
    const lastNames = async (where: object) =>
      (await repo.list({ where: where as never, orderBy: [{ column: "last_name" }] })).map(
        (r) => r.last_name,
      );
    expect(await lastNames({ last_name: "Ñúñez" })).toEqual(["Ñúñez"]);
    expect(await lastNames({ last_name: { eq: "nuñez" } })).toEqual([]);
    expect(await lastNames({ last_name: { in: ["Ávila", "Ortiz", "Nadie"] } })).toEqual(["Ortiz", "Ávila"]);
    expect((await lastNames({ last_name: { neq: "Ortiz" } })).length).toBe(NAMES.length - 1);
    expect(await lastNames({ birth_date: { gte: "1955-01-01", lt: "1957-01-01" } })).toEqual([
      "Güemes",
      "Ortiz",
    ]);
    expect(await lastNames({ email: null })).toEqual(["Güemes", "Álvarez", "Ávila", "Ñúñez"]);
    expect((await lastNames({ email: { isNull: false } })).length).toBe(4);
    expect(await lastNames({ email: { neq: "p0@correo.mx" } })).toEqual(["Nuñez", "Ortiz", "alvarez"]);
    expect(await repo.list({ where: { id: { in: [] } } })).toEqual([]);
    expect((await repo.list({ where: { id: rows[3]?.id } })).map((r) => r.id)).toEqual([rows[3]?.id]);
  });

  test(
    "list.timestamps",
    "timestamp ranges compare instants, whatever offset the caller writes",
    async () => {
      const seeded = await ctx.seedClinic();
      const ids = { branchId: seeded.branches.id, patientId: seeded.patients.id };
      // A day in Mexico City (UTC-6): 00:00-06:00 to 24:00-06:00.
      const times: [string, string][] = [
        ["2026-12-01T05:59:00.000Z", "2026-12-01T06:10:00.000Z"],
        ["2026-12-01T06:00:00.000Z", "2026-12-01T06:30:00.000Z"],
        ["2026-12-01T23:30:00-06:00", "2026-12-01T23:45:00-06:00"],
        ["2026-12-02T06:00:00.000Z", "2026-12-02T06:20:00.000Z"],
      ];
      const rows: NewRow<"appointments">[] = times.map(([starts_at, ends_at]) =>
        fixtures.appointment(ids, { starts_at, ends_at }),
      );
      await source().table("appointments").upsertMany(rows);
      const day = await source()
        .table("appointments")
        .list({
          where: { starts_at: { gte: "2026-12-01T00:00:00-06:00", lt: "2026-12-02T00:00:00-06:00" } },
          orderBy: [{ column: "starts_at" }],
        });
      expect(day.map((r) => r.starts_at)).toEqual(["2026-12-01T06:00:00.000Z", "2026-12-02T05:30:00.000Z"]);
    },
  );

  test("list.order", "orders by code point with Spanish names, nulls placed as in PostgreSQL", async () => {
    await seedPatients();
    const repo = source().table("patients");
    const asc = await repo.list({ orderBy: [{ column: "last_name" }] });
    expect(asc.map((r) => r.last_name)).toEqual([...NAMES].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
    const byEmail = await repo.list({
      orderBy: [{ column: "email", direction: "desc" }, { column: "last_name" }],
    });
    expect(byEmail.slice(0, 4).every((r) => r.email === null)).toBe(true);
    const nullsLast = await repo.list({ orderBy: [{ column: "email", direction: "desc", nulls: "last" }] });
    expect(nullsLast.map((r) => r.email).slice(0, 4)).toEqual([
      "p6@correo.mx",
      "p4@correo.mx",
      "p2@correo.mx",
      "p0@correo.mx",
    ]);
  });

  test("list.enums", "orders and compares enums by declaration order, as PostgreSQL does", async () => {
    const seeded = await ctx.seedClinic();
    const ids = { branchId: seeded.branches.id, patientId: seeded.patients.id };
    const statuses = ["no_show", "scheduled", "completed", "checked_in"] as const;
    await source()
      .table("appointments")
      .upsertMany(statuses.map((status) => fixtures.appointment(ids, { status })));
    const repo = source().table("appointments");
    const ordered = await repo.list({ where: { branch_id: ids.branchId }, orderBy: [{ column: "status" }] });
    expect(ordered.map((r) => r.status)).toEqual([
      "scheduled",
      "scheduled",
      "checked_in",
      "completed",
      "no_show",
    ]);
    const later = await repo.list({
      where: { status: { gt: "checked_in" } },
      orderBy: [{ column: "status" }],
    });
    expect(later.map((r) => r.status)).toEqual(["completed", "no_show"]);
  });

  test("list.paging", "limit and offset page through rows in a stable order", async () => {
    await seedPatients();
    const repo = source().table("patients");
    const all = await repo.list({ orderBy: [{ column: "sex" }] });
    const pages = [];
    for (let offset = 0; offset < NAMES.length; offset += 3) {
      pages.push(...(await repo.list({ orderBy: [{ column: "sex" }], limit: 3, offset })));
    }
    expect(pages.map((r) => r.id)).toEqual(all.map((r) => r.id));
    expect(await repo.list({ limit: 0 })).toEqual([]);
    expect(await repo.list({ offset: 100 })).toEqual([]);
  });

  test(
    "list.large",
    "pages of 10,000 rows come back whole, each row once",
    async () => {
      const branch = await source().table("branches").insert(fixtures.branch());
      const total = 10_000;
      const ids = new Set<string>();
      for (let start = 0; start < total; start += 1_000) {
        const batch = Array.from({ length: 1_000 }, () => fixtures.patient(branch.id, { document_id: null }));
        for (const row of batch) ids.add(row.id);
        await source().table("patients").upsertMany(batch, { timeoutMs: 60_000 });
      }
      const page = await source().table("patients").list({ limit: total }, { timeoutMs: 60_000 });
      expect(page).toHaveLength(total);
      expect(new Set(page.map((r) => r.id))).toEqual(ids);
      expect(await harness().probe.count("patients")).toBe(total);
    },
    180_000,
  );
}
