import { randomUUID } from "node:crypto";
import { TABLE_NAMES, tables } from "@centrovision/core";
import { expect } from "vitest";
import type { ContractContext } from "./describe-source-contract.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const CANONICAL_TS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** Round trips, defaults, versions, upsert idempotency and deletes. */
export function registerWriteCases(ctx: ContractContext): void {
  const { test, harness, fixtures } = ctx;
  const source = () => harness().source;

  test("insert.roundtrip", "stores every table's row exactly and reads it back the same", async () => {
    const rows = fixtures.clinic();
    for (const table of TABLE_NAMES) {
      const written = await source()
        .table(table)
        .insert(rows[table] as never);
      const expected = tables[table].writeSchema.parse(rows[table]) as Record<string, unknown>;
      expect(written, table).toMatchObject(expected);
      expect(Object.keys(written).sort(), table).toEqual([...tables[table].columns].sort());
      expect(await source().table(table).get(written.id), table).toEqual(written);
      expect(await ctx.stored(table, written.id), table).toEqual(written);
    }
  });

  test("insert.defaults", "fills defaults, nulls, timestamps and a first version", async () => {
    const branch = await source()
      .table("branches")
      .insert(fixtures.branch({ phone: undefined }));
    expect(branch).toMatchObject({
      timezone: "America/Mexico_City",
      active: true,
      phone: null,
      base_version: null,
    });
    expect(branch.version).toMatch(UUID);
    expect(branch.created_at).toMatch(CANONICAL_TS);
    expect(branch.updated_at).toBe(branch.created_at);
    expect(Math.abs(Date.parse(branch.created_at) - Date.now())).toBeLessThan(60_000);
  });

  test(
    "insert.writers",
    "created_by and updated_by are the database's: what a writer claims there is not kept",
    async () => {
      // The contract's sources write without a verified person (the owner, the service key, a
      // PC's own copy): null. A person's stamps are tested where a person signs in.
      const claimed = randomUUID();
      const branch = await source()
        .table("branches")
        .insert({ ...fixtures.branch(), created_by: claimed, updated_by: claimed });
      expect(branch).toMatchObject({ created_by: null, updated_by: null });
      const upserted = await source()
        .table("branches")
        .upsert({ ...branch, name: "Sucursal Coyoacán", created_by: claimed, updated_by: claimed });
      expect(upserted).toMatchObject({ name: "Sucursal Coyoacán", created_by: null, updated_by: null });
      expect(await ctx.stored("branches", branch.id)).toEqual(upserted);
    },
  );

  test(
    "upsert.idempotent",
    "replaying an upsert by client UUID leaves one row with the same data",
    async () => {
      const { branches } = await ctx.seedClinic();
      const patient = fixtures.patient(branches.id, { first_name: "Ana Sofía", last_name: "Muñoz" });
      const first = await source().table("patients").upsert(patient);
      const second = await source().table("patients").upsert(patient);
      expect(second.id).toBe(first.id);
      const { version: _v1, base_version: _b1, updated_at: _u1, ...data1 } = first;
      const { version: _v2, base_version: _b2, updated_at: _u2, ...data2 } = second;
      expect(data2).toEqual(data1);
      const all = await source()
        .table("patients")
        .list({ where: { id: patient.id } });
      expect(all).toHaveLength(1);
    },
  );

  test(
    "upsert.merge",
    "an upsert of an existing id overwrites the given columns and chains versions",
    async () => {
      const { patients } = await ctx.seedClinic();
      const next = await source()
        .table("patients")
        .upsert({ ...fixtures.patient(patients.branch_id), id: patients.id, first_name: "Íñigo" });
      expect(next.first_name).toBe("Íñigo");
      expect(next.created_at).toBe(patients.created_at);
      expect(next.base_version).toBe(patients.version);
      expect(next.version).not.toBe(patients.version);
      expect(await ctx.stored("patients", patients.id)).toEqual(next);
    },
  );

  test("upsert-many.atomic", "writes a batch entirely, or nothing when one row fails", async () => {
    const branch = await source().table("branches").insert(fixtures.branch());
    const good = [fixtures.patient(branch.id), fixtures.patient(branch.id)];
    const written = await source().table("patients").upsertMany(good);
    expect(written.map((row) => row.id)).toEqual(good.map((row) => row.id));
    const bad = [fixtures.patient(branch.id), fixtures.patient(randomUUID())];
    await expect(source().table("patients").upsertMany(bad)).rejects.toMatchObject({ code: "constraint" });
    expect(await ctx.stored("patients", bad[0]?.id as string)).toBeNull();
    expect(await harness().probe.count("patients")).toBe(2);
  });

  test(
    "update.versions",
    "an update changes the columns, bumps the version and keeps created_at",
    async () => {
      const { appointments } = await ctx.seedClinic();
      const updated = await source()
        .table("appointments")
        .update(appointments.id, { status: "checked_in", checked_in_at: "2026-11-30T08:55:00-06:00" });
      expect(updated).toMatchObject({
        status: "checked_in",
        checked_in_at: "2026-11-30T14:55:00.000Z",
        created_at: appointments.created_at,
        base_version: appointments.version,
        reason: appointments.reason,
      });
      expect(updated.version).not.toBe(appointments.version);
      expect(Date.parse(updated.updated_at)).toBeGreaterThanOrEqual(Date.parse(appointments.updated_at));
      expect(await ctx.stored("appointments", appointments.id)).toEqual(updated);
    },
  );

  test(
    "update.expected-version",
    "an update against a stale version is a conflict and changes nothing",
    async () => {
      const { patients } = await ctx.seedClinic();
      const fresh = await source()
        .table("patients")
        .update(patients.id, { phone: "+52 33 1111 2222" }, { expectedVersion: patients.version });
      await expect(
        source()
          .table("patients")
          .update(patients.id, { phone: "+52 33 9999 0000" }, { expectedVersion: patients.version }),
      ).rejects.toMatchObject({ code: "conflict" });
      expect(await ctx.stored("patients", patients.id)).toEqual(fresh);
    },
  );

  test("delete.existing", "deletes a row once; a second delete reports false", async () => {
    const { diagnoses } = await ctx.seedClinic();
    expect(await source().table("diagnoses").delete(diagnoses.id)).toBe(true);
    expect(await ctx.stored("diagnoses", diagnoses.id)).toBeNull();
    expect(await source().table("diagnoses").get(diagnoses.id)).toBeNull();
    expect(await source().table("diagnoses").delete(diagnoses.id)).toBe(false);
  });

  test("delete.restrict", "a row still referenced by clinical data cannot be deleted", async () => {
    const seeded = await ctx.seedClinic();
    await expect(source().table("patients").delete(seeded.patients.id)).rejects.toMatchObject({
      code: "constraint",
    });
    expect(await ctx.stored("patients", seeded.patients.id)).toEqual(seeded.patients);
  });

  test("delete.cascade", "deleting a profile removes its role and branch memberships", async () => {
    const profile = await source().table("profiles").insert(fixtures.profile());
    const branch = await source().table("branches").insert(fixtures.branch());
    const role = await source()
      .table("user_roles")
      .insert({ id: randomUUID(), user_id: profile.id, role: "reception" });
    const member = await source()
      .table("user_branches")
      .insert({ id: randomUUID(), user_id: profile.id, branch_id: branch.id });
    expect(await source().table("profiles").delete(profile.id)).toBe(true);
    expect(await ctx.stored("user_roles", role.id)).toBeNull();
    expect(await ctx.stored("user_branches", member.id)).toBeNull();
    expect(await ctx.stored("branches", branch.id)).toEqual(branch);
  });

  test("concurrent.writers", "parallel writers neither lose nor duplicate rows", async () => {
    const branch = await source().table("branches").insert(fixtures.branch());
    const patients = Array.from({ length: 40 }, () => fixtures.patient(branch.id));
    await Promise.all(patients.map((row) => source().table("patients").insert(row)));
    const target = patients[0]?.id as string;
    const phones = Array.from({ length: 20 }, (_, i) => `+52 55 0000 ${String(1000 + i)}`);
    const results = await Promise.allSettled(
      phones.map((phone) => source().table("patients").update(target, { phone })),
    );
    expect(results.every((result) => result.status === "fulfilled")).toBe(true);
    expect(await harness().probe.count("patients")).toBe(40);
    const final = await ctx.stored("patients", target);
    expect(phones).toContain(final?.phone);
    const versions = new Set(
      results.map((result) => (result as PromiseFulfilledResult<{ version: string }>).value.version),
    );
    expect(versions.size).toBe(phones.length);
  });
}
