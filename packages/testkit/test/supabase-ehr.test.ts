import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MIGRATIONS_DIR } from "../src/index.js";
import { type Harness, startHarness } from "./fixtures/supabase/harness.js";

// The real EHR schema (sql/) behind the gateway: its RLS policies only work if the
// Supabase shape existed before the migrations ran.
let h: Harness;
const ROMA = randomUUID();
const POLANCO = randomUUID();
const DOCTOR = randomUUID();
const patient = (branch: string, lastName: string) => ({
  id: randomUUID(),
  branch_id: branch,
  first_name: "Ana",
  last_name: lastName,
  birth_date: "1970-05-04",
  sex: "female",
  phone: "+52 55 1234 5678",
});

beforeAll(async () => {
  h = await startHarness({ migrationsDir: MIGRATIONS_DIR, sqlFiles: [] });
  await h.sql`
    insert into branches (id, code, name, address) values
      (${ROMA}, 'ROMA', 'Roma', 'Av. Álvaro Obregón 1'), (${POLANCO}, 'POLANCO', 'Polanco', 'Masaryk 2')`;
  await h.sql`insert into profiles (id, full_name) values (${DOCTOR}, 'Dra. López')`;
  await h.sql`insert into user_branches (id, user_id, branch_id) values (${randomUUID()}, ${DOCTOR}, ${ROMA})`;
  for (const row of [patient(ROMA, "Núñez"), patient(POLANCO, "Pérez")]) {
    await h.sql`insert into patients ${h.sql(row)}`;
  }
});
afterAll(() => h?.stop());

describe("EHR tables through the gateway", () => {
  it("shows a doctor the patients of their branch, as PostgreSQL renders them", async () => {
    const doctor = h.asUser(await h.stack.mintUserToken(DOCTOR));
    const { data, error } = await doctor.from("patients").select("*").order("last_name");
    expect(error).toBeNull();
    expect(data).toEqual(
      await h.probe("select * from patients where branch_id = $1 order by last_name", [ROMA]),
    );
    expect((await h.service.from("patients").select("id")).data).toHaveLength(2);
  });

  it("refuses anon outright and keeps a doctor's writes inside their branch", async () => {
    const anon = await h.anon.from("patients").select("id");
    expect([anon.status, anon.error?.code, anon.error?.message]).toEqual([
      401,
      "42501",
      "permission denied for table patients",
    ]);
    const doctor = h.asUser(await h.stack.mintUserToken(DOCTOR));
    const mine = await doctor
      .from("patients")
      .insert(patient(ROMA, "García"))
      .select("last_name, version")
      .single();
    expect(mine.status).toBe(201);
    expect(mine.data).toMatchObject({ last_name: "García" });
    const elsewhere = await doctor.from("patients").insert(patient(POLANCO, "Soto"));
    expect([elsewhere.status, elsewhere.error?.code]).toEqual([403, "42501"]);
    const badPhone = await doctor.from("patients").insert({ ...patient(ROMA, "Ruiz"), phone: "call me" });
    expect([badPhone.status, badPhone.error?.code]).toEqual([400, "23514"]);
  });
});
