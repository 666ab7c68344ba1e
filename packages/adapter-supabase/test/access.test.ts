import { randomUUID } from "node:crypto";
import { CvError, type DataSource } from "@centrovision/core";
import { createFixtures } from "@centrovision/testkit/contract";
import { createClient, type WebSocketLikeConstructor } from "@supabase/supabase-js";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { createSupabaseSource, type SupabaseConfigInput } from "../src/index.js";
import { type LocalCloud, startLocalCloud } from "./support/local-cloud.js";

const fixtures = createFixtures();
const ROMA = randomUUID();
const POLANCO = randomUUID();
const DOCTOR = randomUUID();
const romaPatient = fixtures.patient(ROMA, { last_name: "Núñez" });
const polancoPatient = fixtures.patient(POLANCO, { last_name: "Pérez" });
let cloud: LocalCloud;
const opened: DataSource[] = [];

beforeAll(async () => {
  cloud = await startLocalCloud();
  const { sql } = cloud;
  await sql`insert into branches (id, code, name, address) values
    (${ROMA}, 'ROMA', 'Roma', 'Av. Álvaro Obregón 1'), (${POLANCO}, 'POLANCO', 'Polanco', 'Masaryk 2')`;
  await sql`insert into profiles (id, full_name) values (${DOCTOR}, 'Dra. López')`;
  await sql`insert into user_branches (id, user_id, branch_id) values (${randomUUID()}, ${DOCTOR}, ${ROMA})`;
  for (const row of [romaPatient, polancoPatient])
    await sql`insert into patients ${sql(row as Record<string, unknown>)}`;
});

afterAll(async () => {
  await cloud?.stop();
});

afterEach(async () => {
  await Promise.all(opened.splice(0).map((s) => s.close()));
});

function open(config: Partial<SupabaseConfigInput>): DataSource {
  const source = createSupabaseSource({ url: cloud.stack.url, key: cloud.stack.anonKey, ...config });
  opened.push(source);
  return source;
}

async function rejection(promise: Promise<unknown>): Promise<CvError> {
  const error = await promise.then(
    () => new Error("expected the call to fail"),
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(CvError);
  return error as CvError;
}

describe("a user's session (row-level security)", () => {
  it("sees only the rows of the user's branches", async () => {
    const doctor = open({ accessToken: await cloud.stack.mintUserToken(DOCTOR) });
    const patients = doctor.table("patients");
    expect((await patients.list()).map((p) => p.id)).toEqual([romaPatient.id]);
    expect(await patients.get(romaPatient.id)).toMatchObject({ last_name: "Núñez" });
    expect(await patients.get(polancoPatient.id)).toBeNull();
    expect((await rejection(patients.update(polancoPatient.id, { first_name: "Eva" }))).code).toBe(
      "not_found",
    );
    expect(await patients.delete(polancoPatient.id)).toBe(false);
    const elsewhere = await rejection(patients.insert(fixtures.patient(POLANCO)));
    expect(elsewhere.code).toBe("unauthorized");
    expect(elsewhere.message).toContain("row-level security");
    expect(await cloud.probe.row("patients", polancoPatient.id)).toMatchObject({ first_name: "José Ángel" });
  });

  it("writes inside the user's branch with versions kept by the database", async () => {
    const doctor = open({ accessToken: await cloud.stack.mintUserToken(DOCTOR) });
    const patients = doctor.table("patients");
    const created = await patients.insert(fixtures.patient(ROMA, { document_id: null }));
    const updated = await patients.update(
      created.id,
      { phone: "+52 55 4444 5555" },
      { expectedVersion: created.version },
    );
    expect(updated.base_version).toBe(created.version);
    expect(await patients.delete(created.id, { expectedVersion: updated.version })).toBe(true);
  });

  it("is named as the row's writer (created_by, updated_by), whatever the write claims", async () => {
    const doctor = open({ accessToken: await cloud.stack.mintUserToken(DOCTOR) });
    const patients = doctor.table("patients");
    const someoneElse = randomUUID();
    const created = await patients.insert({
      ...fixtures.patient(ROMA, { document_id: null }),
      created_by: someoneElse,
      updated_by: someoneElse,
    });
    expect(created).toMatchObject({ created_by: DOCTOR, updated_by: DOCTOR });
    // The service key is no person: the creator stays, the last writer is no one.
    const service = open({ key: cloud.stack.serviceRoleKey });
    expect(await service.table("patients").update(created.id, { phone: "+52 55 4444 6666" })).toMatchObject({
      created_by: DOCTOR,
      updated_by: null,
    });
    expect(
      await patients.upsert({
        ...created,
        phone: "+52 55 4444 7777",
        created_by: someoneElse,
        updated_by: null,
      }),
    ).toMatchObject({ created_by: DOCTOR, updated_by: DOCTOR });
    expect(await patients.delete(created.id)).toBe(true);
  });

  it("an expired session is unauthorized, while the probe (key only) still says the cloud is up", async () => {
    const expired = await cloud.stack.mintUserToken(DOCTOR, {}, { expiresIn: -120 });
    const doctor = open({ accessToken: expired });
    const error = await rejection(doctor.table("patients").list());
    expect(error.code).toBe("unauthorized");
    expect(error.message).toContain("session token is invalid or expired");
    expect(error.message).not.toContain(expired);
    expect((await doctor.probe()).latencyMs).toBeGreaterThanOrEqual(0);
  });

  it("asks a token provider for the current token on every request (refreshed sessions)", async () => {
    let token = await cloud.stack.mintUserToken(DOCTOR);
    let asked = 0;
    const doctor = open({
      accessToken: async () => {
        asked++;
        return token;
      },
    });
    expect(await doctor.table("patients").get(romaPatient.id)).not.toBeNull();
    token = await cloud.stack.mintUserToken(DOCTOR, {}, { expiresIn: -120 });
    expect((await rejection(doctor.table("patients").get(romaPatient.id))).code).toBe("unauthorized");
    expect(asked).toBeGreaterThanOrEqual(2);
  });
});

describe("keys", () => {
  it("the anon key alone reads nothing: unauthorized, not down", async () => {
    expect((await rejection(open({}).table("patients").list())).code).toBe("unauthorized");
  });

  it("a wrong key is unauthorized for data and probe, and never echoed", async () => {
    const key = `${cloud.stack.anonKey.slice(0, -6)}XXXXXX`;
    const s = open({ key });
    for (const attempt of [() => s.table("branches").get(ROMA), () => s.probe()]) {
      const error = await rejection(attempt());
      expect(error.code).toBe("unauthorized");
      expect(JSON.stringify({ ...error.toJSON(), cause: error.cause })).not.toContain(key);
    }
  });
});

describe("errors", () => {
  it("a unique violation is a constraint error naming the column, never the value", async () => {
    const s = open({ key: cloud.stack.serviceRoleKey });
    const twin = fixtures.patient(ROMA, { document_id: romaPatient.document_id });
    const error = await rejection(s.table("patients").insert(twin));
    expect(error).toMatchObject({
      code: "constraint",
      constraint: "patients_branch_id_document_id_key",
      table: "patients",
    });
    expect(error.message).toBe(
      "[adapter-supabase] patients already has a row with this branch_id, document_id",
    );
    expect(JSON.stringify({ ...error.toJSON(), cause: error.cause })).not.toContain(
      String(romaPatient.document_id),
    );
  });

  it("a batch whose rows carry different columns is refused before anything is sent", async () => {
    const s = open({ key: cloud.stack.serviceRoleKey });
    const rows = [
      fixtures.patient(ROMA, { document_id: null }),
      fixtures.patient(ROMA, { document_id: null, email: "a@b.mx" }),
    ];
    const error = await rejection(s.table("patients").upsertMany(rows));
    expect(error.code).toBe("invalid_input");
    expect(error.issues).toEqual([{ path: "rows.1", message: "carries different columns than rows.0" }]);
    expect(await cloud.probe.row("patients", rows[0]?.id as string)).toBeNull();
  });
});

describe("an injected client", () => {
  const options = {
    realtime: { transport: WebSocket as unknown as WebSocketLikeConstructor },
    auth: { persistSession: false, autoRefreshToken: false },
  };

  it("a lazy factory is called once, on the first call, and its client's auth applies", async () => {
    let made = 0;
    const s = open({
      key: cloud.stack.serviceRoleKey,
      client: () => {
        made++;
        return createClient(cloud.stack.url, cloud.stack.serviceRoleKey, options);
      },
    });
    await s.probe();
    expect(made).toBe(0);
    expect(await s.table("branches").get(ROMA)).toMatchObject({ code: "ROMA" });
    expect((await s.table("branches").list()).length).toBe(2);
    expect(made).toBe(1);
  });

  it("an instance with a user's session sees what the user sees", async () => {
    const token = await cloud.stack.mintUserToken(DOCTOR);
    const client = createClient(cloud.stack.url, cloud.stack.anonKey, {
      ...options,
      accessToken: async () => token,
    });
    const s = open({ client });
    expect((await s.table("branches").list()).map((b) => b.code)).toEqual(["ROMA"]);
  });
});
