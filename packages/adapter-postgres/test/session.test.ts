import { randomBytes, randomUUID } from "node:crypto";
import { type DataSource, isTierDown } from "@centrovision/core";
import { clinicSession, createLink, type Link, signClinicToken } from "@centrovision/testkit";
import { createFixtures, timed } from "@centrovision/testkit/contract";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createPostgresSource, type PostgresConfigInput } from "../src/index.js";
import { createTestDatabase, type TestDatabase } from "./support/test-database.js";

/*
 * The `session` option: a PC login (centrovision_app) reads and writes as the person of a clinic
 * session (sql/0003), under the same row-level policies as the cloud (sql/0004). Two branches,
 * one person at each, one patient at each; every call goes through a link, as over the LAN.
 */

const fixtures = createFixtures();
const PC = { user: `pc_session_${randomUUID().slice(0, 8)}`, password: "recepcion-sesion-2026" };
const branchA = fixtures.branch();
const branchB = fixtures.branch();
const patientA = fixtures.patient(branchA.id, { document_id: null });
const patientB = fixtures.patient(branchB.id, { document_id: null });
const personA = randomUUID();
const personB = randomUUID();
let database: TestDatabase;
let link: Link;
let pcUrl: string;
let tokenA: string;
let tokenB: string;
const sources: DataSource[] = [];

beforeAll(async () => {
  database = await createTestDatabase("session");
  const sql = database.sql;
  await sql`insert into branches ${sql([branchA, branchB])}`;
  await sql`insert into patients ${sql([patientA, patientB])}`;
  // The people, as the sync daemon brings them from the cloud (profiles has no FK to auth.users).
  await sql`insert into profiles (id, full_name) values (${personA}, 'Recepción Centro'), (${personB}, 'Recepción Norte')`;
  await sql`insert into user_branches (id, user_id, branch_id) values
    (${randomUUID()}, ${personA}, ${branchA.id}), (${randomUUID()}, ${personB}, ${branchB.id})`;
  await sql.unsafe(`create role ${PC.user} login password '${PC.password}' in role centrovision_app`);
  [tokenA, tokenB] = await Promise.all([
    clinicSession(database.url, { userId: personA }),
    clinicSession(database.url, { userId: personB }),
  ]);
  link = await createLink({ target: { host: "127.0.0.1", port: database.port } });
  const url = new URL(link.url(database.url));
  url.username = PC.user;
  url.password = PC.password;
  pcUrl = url.href;
});

afterEach(async () => {
  await link.pass();
  await Promise.all(sources.splice(0).map((source) => source.close()));
});

afterAll(async () => {
  await link?.close();
  await database?.sql.unsafe(`drop role if exists ${PC.user}`);
  await database?.drop();
});

function open(config: Partial<PostgresConfigInput> = {}): DataSource {
  const source = createPostgresSource({ id: "clinic", url: pcUrl, ...config } as PostgresConfigInput);
  sources.push(source);
  return source;
}

const patientIds = async (source: DataSource) =>
  (await source.table("patients").list({ orderBy: [{ column: "id" }] })).map((row) => row.id);

describe("a PC login without a session", () => {
  it("reads and writes no EHR row: unauthorized, saying the PC must sign a person in", async () => {
    const source = open();
    const calls: (() => Promise<unknown>)[] = [
      () => source.table("patients").get(patientA.id),
      () => source.table("branches").list(),
      () => source.table("patients").insert(fixtures.patient(branchA.id, { document_id: null })),
    ];
    for (const call of calls) {
      const attempt = await timed(call());
      expect(attempt.error?.code).toBe("unauthorized");
      expect(attempt.error?.message).toContain(
        `user ${PC.user} may not do this on ${attempt.error?.table}: a PC works only as a signed-in person (a clinic session)`,
      );
      expect(isTierDown(attempt.error)).toBe(false);
    }
    // The server is there: the router's probe still answers for a PC nobody signed in to yet.
    await expect(source.probe()).resolves.toMatchObject({ latencyMs: expect.any(Number) });
  });

  it("also when session() returns undefined", async () => {
    const source = open({ session: () => undefined });
    expect((await timed(source.table("patients").get(patientA.id))).error?.code).toBe("unauthorized");
  });
});

describe("a PC login with a session", () => {
  it("reads and writes only the rows of its person's branches", async () => {
    const source = open({ session: () => tokenA });
    expect(await patientIds(source)).toEqual([patientA.id]);
    expect(await source.table("patients").get(patientB.id)).toBeNull();
    expect((await source.table("branches").list()).map((row) => row.id)).toEqual([branchA.id]);

    const mine = await source.table("patients").insert(fixtures.patient(branchA.id, { document_id: null }));
    expect(await database.probe.row("patients", mine.id)).toMatchObject({ branch_id: branchA.id });
    const updated = await source.table("patients").update(mine.id, { phone: "+52 55 1111 2222" });
    expect(updated.phone).toBe("+52 55 1111 2222");

    // Another branch's patient: refused by the policies, nothing written.
    const theirs = fixtures.patient(branchB.id, { document_id: null });
    const refused = await timed(source.table("patients").insert(theirs));
    expect(refused.error?.code).toBe("unauthorized");
    expect(refused.error?.message).toBe(
      "[adapter-postgres] the clinic server's access rules do not let this person write this patients row",
    );
    expect(await database.probe.row("patients", theirs.id)).toBeNull();
    // Moving its own patient into a branch it does not work in is refused too.
    const moved = await timed(source.table("patients").update(mine.id, { branch_id: branchB.id }));
    expect(moved.error?.code).toBe("unauthorized");
    // A row it cannot see is, for it, not there.
    const hidden = await timed(source.table("patients").update(patientB.id, { phone: "+52 55 0000 0000" }));
    expect(hidden.error?.code).toBe("not_found");
    expect(await source.table("patients").delete(patientB.id)).toBe(false);
    expect(await database.probe.row("patients", patientB.id)).toMatchObject({ phone: patientB.phone });
    expect(await source.table("patients").delete(mine.id)).toBe(true);
  });

  it("names its person as the row's writer (created_by, updated_by), whatever the write claims", async () => {
    const source = open({ session: () => tokenA });
    const patients = source.table("patients");
    const mine = await patients.insert({
      ...fixtures.patient(branchA.id, { document_id: null }),
      created_by: personB,
      updated_by: personB,
    });
    expect(mine).toMatchObject({ created_by: personA, updated_by: personA });
    // A write without a person (the server's owner) keeps the creator and names no one.
    await database.sql`update patients set phone = '+52 55 7777 8888' where id = ${mine.id}`;
    expect(await database.probe.row("patients", mine.id)).toMatchObject({
      created_by: personA,
      updated_by: null,
    });
    const edited = await patients.upsert({ ...mine, phone: "+52 55 1111 3333", created_by: personB });
    expect(edited).toMatchObject({ created_by: personA, updated_by: personA });
    expect(await patients.delete(mine.id)).toBe(true);
  });

  it("switches person on the next call when session() returns another token, replacing the pool", async () => {
    let token: string | undefined = tokenA;
    const source = open({ session: () => token });
    expect(await patientIds(source)).toEqual([patientA.id]);
    expect(await patientIds(source)).toEqual([patientA.id]);
    const accepted = link.stats.accepted;

    token = tokenB;
    expect(await patientIds(source)).toEqual([patientB.id]);
    expect(link.stats.accepted).toBe(accepted + 1);
    // Same token again: the new pool is kept.
    expect(await source.table("patients").get(patientB.id)).toMatchObject({ id: patientB.id });
    expect(link.stats.accepted).toBe(accepted + 1);

    // Signed out: the login alone again, which sees nothing.
    token = undefined;
    expect((await timed(patientIds(source))).error?.code).toBe("unauthorized");
    token = tokenA;
    expect(await patientIds(source)).toEqual([patientA.id]);
  });

  it("a call in flight when the person changes finishes as the person it started as", async () => {
    let token = tokenA;
    const source = open({ session: () => token });
    await patientIds(source);
    await link.latency(300);
    const asA = timed(patientIds(source));
    // On the wire, waiting for the server's answer.
    await new Promise((resolve) => setTimeout(resolve, 100));
    token = tokenB;
    const asB = timed(patientIds(source));
    expect(await asA).toMatchObject({ value: [patientA.id] });
    expect(await asB).toMatchObject({ value: [patientB.id] });
  });

  it("a call started in the same tick as the change is not refused as if the server were gone", async () => {
    let token = tokenA;
    const source = open({ session: () => token });
    await patientIds(source);
    const asA = timed(patientIds(source));
    token = tokenB;
    const asB = timed(patientIds(source));
    expect(await asA).toMatchObject({ value: [patientA.id] });
    expect(await asB).toMatchObject({ value: [patientB.id] });
  });
});

describe("a session the clinic server refuses", () => {
  const refusedBy = async (token: string) => {
    const source = open({ session: () => token });
    const attempt = await timed(source.table("patients").get(patientA.id));
    expect(attempt.error?.code).toBe("unauthorized");
    // A refused person is not a dead server: the router must not fail over.
    expect(isTierDown(attempt.error)).toBe(false);
    expect(attempt.error?.message).toMatch(/; sign in again$/);
    expect(attempt.error?.message).not.toContain(token);
    await expect(source.probe()).resolves.toMatchObject({ latencyMs: expect.any(Number) });
    return attempt.error?.message;
  };

  it("expired: unauthorized (CV010), not unavailable", async () => {
    const expired = await clinicSession(database.url, { userId: personA, expiresInSeconds: -60 });
    expect(await refusedBy(expired)).toBe(
      "[adapter-postgres] the clinic server refused the person's session: the clinic session has expired; sign in again",
    );
  });

  it("forged (signed with another key, or not a token at all): unauthorized (CV010), not unavailable", async () => {
    const [header] = tokenA.split(".");
    const { kid } = JSON.parse(Buffer.from(header as string, "base64url").toString()) as { kid: string };
    const now = Math.floor(Date.now() / 1000);
    const forged = signClinicToken(randomBytes(32), kid, {
      sub: personB,
      role: "authenticated",
      aud: "centrovision-clinic",
      sign_in: "online",
      sid: randomUUID(),
      iat: now,
      exp: now + 600,
    });
    const notIssuedHere =
      "the clinic server refused the person's session: the clinic session is not one this clinic server issued";
    expect(await refusedBy(forged)).toContain(notIssuedHere);
    expect(await refusedBy("not-a-token")).toContain(notIssuedHere);
  });

  it("the same source works again as soon as session() returns a valid token", async () => {
    let token = await clinicSession(database.url, { userId: personA, expiresInSeconds: -60 });
    const source = open({ session: () => token });
    expect((await timed(patientIds(source))).error?.code).toBe("unauthorized");
    token = tokenA;
    expect(await patientIds(source)).toEqual([patientA.id]);
  });
});

describe("identity tables belong to the cloud", () => {
  it("a person edits only their own profile; roles, memberships, branches and others' profiles are refused, and nothing refused is captured for the sync", async () => {
    const source = open({ session: () => tokenA });
    const logged = async (table: string) =>
      (
        await database.sql<{ n: number }[]>`
          select count(*)::int as n from cv_sync.change_log where table_name = ${table}`
      )[0]?.n;
    const before = { roles: await logged("user_roles"), memberships: await logged("user_branches") };

    const own = await source
      .table("profiles")
      .update(personA, { full_name: "Recepción Centro (turno tarde)" });
    expect(own.full_name).toBe("Recepción Centro (turno tarde)");

    const admin = await timed(
      source.table("user_roles").insert({ id: randomUUID(), user_id: personA, role: "admin" }),
    );
    expect(admin.error).toMatchObject({
      code: "unauthorized",
      message: expect.stringContaining("access rules do not let this person write this user_roles row"),
    });
    const membership = await timed(
      source.table("user_branches").insert({ id: randomUUID(), user_id: personA, branch_id: branchB.id }),
    );
    expect(membership.error?.code).toBe("unauthorized");
    // Rows the policies do not open for writing are not there for this person: nothing to change.
    expect((await timed(source.table("branches").update(branchA.id, { name: "Centro" }))).error?.code).toBe(
      "not_found",
    );
    expect((await timed(source.table("profiles").update(personB, { full_name: "Otro" }))).error?.code).toBe(
      "not_found",
    );

    expect({ roles: await logged("user_roles"), memberships: await logged("user_branches") }).toEqual(before);
    const [branch] = await database.sql<
      { name: string }[]
    >`select name from branches where id = ${branchA.id}`;
    expect(branch?.name).toBe(branchA.name);
  });
});
