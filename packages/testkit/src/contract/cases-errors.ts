import { randomUUID } from "node:crypto";
import { CvError, type TableName } from "@centrovision/core";
import { expect } from "vitest";
import type { ContractContext } from "./describe-source-contract.js";

async function rejection(promise: Promise<unknown>): Promise<CvError> {
  const error = await promise.then(
    () => {
      throw new Error("expected the call to fail");
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(CvError);
  return error as CvError;
}

/** Every failure is a typed error, and a failed write leaves nothing behind. */
export function registerErrorCases(ctx: ContractContext): void {
  const { test, harness, fixtures } = ctx;
  const source = () => harness().source;
  const count = (table: TableName) => harness().probe.count(table);

  test("insert.duplicate-id", "inserting an existing id is a constraint error", async () => {
    const { patients } = await ctx.seedClinic();
    const error = await rejection(
      source()
        .table("patients")
        .insert({ ...fixtures.patient(patients.branch_id), id: patients.id }),
    );
    expect(error.code).toBe("constraint");
    expect(await ctx.stored("patients", patients.id)).toEqual(patients);
  });

  test("insert.unique", "a duplicate unique key is a constraint error and writes nothing", async () => {
    const { patients } = await ctx.seedClinic();
    const twin = fixtures.patient(patients.branch_id, { document_id: patients.document_id });
    expect((await rejection(source().table("patients").insert(twin))).code).toBe("constraint");
    expect(await ctx.stored("patients", twin.id)).toBeNull();
  });

  test("insert.foreign-key", "a row pointing at a missing parent is a constraint error", async () => {
    const orphan = fixtures.patient(randomUUID());
    expect((await rejection(source().table("patients").insert(orphan))).code).toBe("constraint");
    expect(await count("patients")).toBe(0);
  });

  test(
    "insert.invalid",
    "invalid rows are rejected before anything is written, naming the field",
    async () => {
      const branch = await source().table("branches").insert(fixtures.branch());
      const cases: [string, Record<string, unknown>][] = [
        ["id", { ...fixtures.patient(branch.id), id: "not-a-uuid" }],
        ["first_name", (({ first_name: _, ...rest }) => rest)(fixtures.patient(branch.id))],
        ["birth_date", { ...fixtures.patient(branch.id), birth_date: 19580314 }],
        ["sex", { ...fixtures.patient(branch.id), sex: "robot" }],
        ["hacked", { ...fixtures.patient(branch.id), hacked: "'; drop table patients; --" }],
      ];
      for (const [field, row] of cases) {
        const error = await rejection(
          source()
            .table("patients")
            .insert(row as never),
        );
        expect(error.code, field).toBe("invalid_input");
        expect(
          error.issues.map((issue) => issue.path),
          field,
        ).toContain(field);
      }
      expect(await count("patients")).toBe(0);
      const exam = { ...fixtures.examEye(randomUUID()), iop_mmhg: 95 };
      const error = await rejection(source().table("exam_eye").insert(exam));
      expect(error.issues.map((issue) => issue.path)).toEqual(["iop_mmhg"]);
    },
  );

  test("update.missing", "updating a missing row is not_found", async () => {
    expect(
      (await rejection(source().table("patients").update(randomUUID(), { first_name: "Luz" }))).code,
    ).toBe("not_found");
  });

  test("update.invalid", "an invalid change is rejected and the row is untouched", async () => {
    const { patients } = await ctx.seedClinic();
    for (const patch of [{ birth_date: "30/11/2026" }, { id: randomUUID() }, {}, { phone: null }]) {
      expect(
        (
          await rejection(
            source()
              .table("patients")
              .update(patients.id, patch as never),
          )
        ).code,
      ).toBe("invalid_input");
    }
    expect((await rejection(source().table("patients").get("1; select 1"))).code).toBe("invalid_input");
    expect(await ctx.stored("patients", patients.id)).toEqual(patients);
  });

  test("list.invalid", "a query on an unknown column or with a bad operator is invalid_input", async () => {
    const repo = source().table("patients");
    const bad = [
      { where: { nope: 1 } },
      { where: { last_name: { like: "%a%" } } },
      { orderBy: [{ column: "last_name; drop table patients" }] },
      { limit: -1 },
      // Values the column can never hold are errors everywhere, as PostgreSQL makes them.
      { where: { id: "not-a-uuid" } },
      { where: { sex: { in: ["female", "robot"] } } },
      { where: { birth_date: { gte: "30/11/1958" } } },
    ];
    for (const query of bad) {
      expect((await rejection(repo.list(query as never))).code).toBe("invalid_input");
    }
  });

  test("probe.up", "a probe of a live source resolves with its latency", async () => {
    const result = await source().probe({ timeoutMs: 5_000 });
    expect(result.latencyMs).toBeGreaterThanOrEqual(0);
  });

  test("probe.deadline", "a probe of a source that stopped answering fails within its deadline", async () => {
    const { cut } = harness();
    if (!cut)
      throw new Error("[testkit] probe.deadline needs the harness to provide cut(); opt out with a reason");
    await cut();
    const started = Date.now();
    const error = await rejection(source().probe({ timeoutMs: 500 }));
    expect(["timeout", "unavailable"]).toContain(error.code);
    expect(Date.now() - started).toBeLessThan(1_500);
  });

  test("close", "after close every call is unavailable", async () => {
    await source().close();
    expect((await rejection(source().table("patients").get(randomUUID()))).code).toBe("unavailable");
    await source().close();
  });
}
