import { randomUUID } from "node:crypto";
import { CvError, isTierDown, SYNCED_TABLES, type TableName } from "@centrovision/core";
import { asClinicPerson, clinicSession, type LocalSupabase, startLocalSupabase } from "@centrovision/testkit";
import {
  type ClinicPerson,
  type Consultation,
  clinicPerson,
  consultation,
  createNode,
  ensureLogin,
  insert,
  insertConsultation,
  rowOf,
  type SqlNode,
  sharedServer,
  update,
  withLogin,
} from "@centrovision/testkit/nodes";
import { createClient, type WebSocketLikeConstructor } from "@supabase/supabase-js";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { type ClientApplier, type ClientWrite, createClientApplier } from "../../src/index.js";

/*
 * cv_client_apply (sql/0010) through createClientApplier, with the rights a PC really holds: on
 * the clinic server a centrovision_app login acting as a signed-in person (a clinic session), on a
 * real local Supabase a user session; the same row-level policies (sql/0004) on both.
 * Rows are written first on a scratch node (the "PC's tier"), as the PC would have got them back.
 * A PC writes clinical rows; a branch's configuration (branches, rooms, people) reaches the
 * clinic server from the cloud through the sync, so the tests seed it there as the owner.
 */

const APP = { user: "cv_client_apply_test", password: "client-apply-test-password" };
const CLINICAL = ["patients", "appointments", "encounters", "exam_eye", "diagnoses"] as const;
const CONFIGURATION = SYNCED_TABLES.filter((table) => !(CLINICAL as readonly string[]).includes(table));
let pc: SqlNode;
let server: SqlNode;
let appUrl: string;
/** The receptionist signed in on the PC; works at every branch `seeded()` makes. */
let person: ClinicPerson;
const appliers: ClientApplier[] = [];

beforeAll(async () => {
  [pc, server] = await Promise.all([createNode("pc"), createNode("clinic")]);
  appUrl = withLogin(server.url, await ensureLogin(APP, "centrovision_app"));
  person = await clinicPerson(server, { fullName: "Recepción Roma" });
});
afterAll(async () => {
  await Promise.all(appliers.map((a) => a.close()));
  await Promise.all([pc?.drop(), server?.drop()]);
});

/** An applier acting as `session`'s person (default: the signed-in receptionist); null: the login alone. */
function clinicApplier(session: (() => string | undefined) | null = person.session): ClientApplier {
  const applier = createClientApplier({ postgres: { url: appUrl, ...(session !== null && { session }) } });
  appliers.push(applier);
  return applier;
}

/**
 * A consultation written on the PC's tier; its branch's configuration on the clinic server (as
 * the sync brought it), with the signed-in person working there unless `admit` is false.
 */
async function seeded({ admit = true } = {}): Promise<Consultation> {
  const graph = consultation();
  await insertConsultation(pc.sql, graph);
  await server.sql.begin(async (tx) => {
    for (const table of CONFIGURATION) await insert(tx, table, graph[table]);
  });
  if (admit) await person.admit(graph.branches.id);
  return graph;
}

/** The stored rows of `graph` on the PC's tier, as writes, parents first. */
async function writesOf(
  graph: Consultation,
  tables: readonly TableName[] = CLINICAL,
): Promise<ClientWrite[]> {
  const writes: ClientWrite[] = [];
  for (const table of tables) {
    const row = await rowOf(pc.sql, table, graph[table].id);
    writes.push({ table, op: "upsert", id: graph[table].id, row: row ?? null });
  }
  return writes;
}

/** A consultation written on the PC's tier and applied to the clinic server. */
async function appliedGraph(): Promise<{ graph: Consultation; applier: ClientApplier }> {
  const graph = await seeded();
  const applier = clinicApplier();
  await applier.apply(await writesOf(graph));
  return { graph, applier };
}

async function conflictsOf(node: SqlNode, id: string) {
  return node.sql<{ winner: string; status: string; local_version: string; remote_version: string }[]>`
    select winner, status, local_version, remote_version from cv_sync.conflicts where row_id = ${id}`;
}

describe("cv_client_apply on the clinic server (a centrovision_app login with its person's session)", () => {
  it("writes new rows once, captured as the server's own changes; the same versions again are no-ops", async () => {
    const graph = await seeded();
    const applier = clinicApplier();
    const writes = await writesOf(graph);
    expect(await applier.apply(writes)).toEqual({
      applied: 5,
      skipped: 0,
      conflicts: 0,
      ignored: 0,
      rejected: [],
      doubleBookings: [],
    });
    expect(await applier.apply(writes.toReversed())).toMatchObject({ applied: 0, skipped: 5 });
    const stored = await rowOf(server.sql, "patients", graph.patients.id);
    expect(stored?.version).toBe(writes[0]?.row?.version);
    const [log] = await server.sql<{ n: number }[]>`
      select count(*)::int as n from cv_sync.change_log
      where row_id = ${graph.patients.id} and origin = ${server.id} and received_from is null`;
    expect(log?.n).toBe(1);
    expect(await applier.pendingUp()).toBeGreaterThanOrEqual(5);
  });

  it("fast-forwards a row the server holds at the write's base version", async () => {
    const { graph, applier } = await appliedGraph();
    await update(pc.sql, "patients", graph.patients.id, { phone: "55 0000 1111" });
    const [edit] = await writesOf(graph, ["patients"]);
    expect(await applier.apply([edit as ClientWrite])).toMatchObject({ applied: 1, conflicts: 0 });
    const stored = await rowOf(server.sql, "patients", graph.patients.id);
    expect(stored).toMatchObject({
      phone: "55 0000 1111",
      version: edit?.row?.version,
      base_version: edit?.row?.base_version,
    });
  });

  it("settles a concurrent edit by policy: different columns merge, the same column keeps the loser in _conflicts", async () => {
    const { graph, applier } = await appliedGraph();
    // The PC changes the first name; the server, unaware, the phone (after it); then both the phone.
    await update(pc.sql, "patients", graph.patients.id, { first_name: "Josefa" });
    await update(server.sql, "patients", graph.patients.id, { phone: "55 2222 3333" });
    const [merge] = await writesOf(graph, ["patients"]);
    expect(await applier.apply([merge as ClientWrite])).toMatchObject({
      applied: 0,
      conflicts: 1,
      rejected: [],
    });
    // The merge is the PC person's write, though the server's edit (its owner's: no one) is later.
    expect(await rowOf(server.sql, "patients", graph.patients.id)).toMatchObject({
      first_name: "Josefa",
      phone: "55 2222 3333",
      updated_by: person.userId,
    });

    await update(server.sql, "patients", graph.patients.id, { phone: "55 4444 5555" });
    await update(pc.sql, "patients", graph.patients.id, { phone: "55 6666 7777" });
    const [contested] = await writesOf(graph, ["patients"]);
    expect(await applier.apply([contested as ClientWrite])).toMatchObject({ conflicts: 1, rejected: [] });
    const conflicts = await conflictsOf(server, graph.patients.id);
    const open = conflicts.filter((c) => c.status === "open");
    expect(open).toHaveLength(1);
    // Both versions kept: whichever won, the other is in the conflict record.
    expect([open[0]?.local_version, open[0]?.remote_version]).toContain(contested?.row?.version);
    // Sending the same write again changes nothing and records nothing new.
    const before = await rowOf(server.sql, "patients", graph.patients.id);
    expect(await applier.apply([contested as ClientWrite])).toMatchObject({ skipped: 1, conflicts: 0 });
    expect(await rowOf(server.sql, "patients", graph.patients.id)).toEqual(before);
    expect(await conflictsOf(server, graph.patients.id)).toHaveLength(conflicts.length);
  });

  it("in carry mode leaves a concurrently changed row alone for the regular sync", async () => {
    const { graph, applier } = await appliedGraph();
    await update(server.sql, "patients", graph.patients.id, { phone: "55 8888 9999" });
    await update(pc.sql, "patients", graph.patients.id, { phone: "55 1111 2222" });
    const [edit] = await writesOf(graph, ["patients"]);
    expect(await applier.apply([edit as ClientWrite], { mode: "carry" })).toMatchObject({
      applied: 0,
      conflicts: 1,
    });
    expect(await rowOf(server.sql, "patients", graph.patients.id)).toMatchObject({ phone: "55 8888 9999" });
    expect(await conflictsOf(server, graph.patients.id)).toHaveLength(0);
  });

  it("reports rows refused for good one by one and applies the rest of the batch", async () => {
    const { graph, applier } = await appliedGraph();
    // Same document number as an existing patient (a unique key), and a delete of a stale version.
    const twin = { ...(await rowOf(pc.sql, "patients", graph.patients.id)), id: randomUUID() } as Record<
      string,
      unknown
    >;
    const staleDelete: ClientWrite = {
      table: "diagnoses",
      op: "delete",
      id: graph.diagnoses.id,
      row: null,
      baseVersion: randomUUID(),
    };
    const fresh = await seeded();
    const result = await applier.apply([
      { table: "patients", op: "upsert", id: twin.id as string, row: twin },
      staleDelete,
      ...(await writesOf(fresh)),
    ]);
    expect(result.applied).toBe(5);
    expect(result.rejected).toEqual([
      expect.objectContaining({ table: "patients", id: twin.id, code: "constraint" }),
      expect.objectContaining({ table: "diagnoses", id: graph.diagnoses.id, code: "conflict" }),
    ]);
    const { first_name, last_name, document_id } = graph.patients;
    for (const item of result.rejected) {
      for (const value of [first_name, last_name, document_id]) expect(item.message).not.toContain(value);
    }
    expect(await rowOf(server.sql, "diagnoses", graph.diagnoses.id)).toBeDefined();
  });

  it("deletes a row at the version the PC saw, once", async () => {
    const graph = await seeded();
    const applier = clinicApplier();
    const writes = await writesOf(graph);
    await applier.apply(writes);
    const version = writes.find((write) => write.table === "diagnoses")?.row?.version as string;
    const del: ClientWrite = {
      table: "diagnoses",
      op: "delete",
      id: graph.diagnoses.id,
      row: null,
      baseVersion: version,
    };
    expect(await applier.apply([del])).toMatchObject({ applied: 1 });
    expect(await applier.apply([del])).toMatchObject({ applied: 0, skipped: 1 });
    expect(await rowOf(server.sql, "diagnoses", graph.diagnoses.id)).toBeUndefined();
  });

  it("does not let a PC settle a row it has not just written, nor read the conflicts, as its person or alone", async () => {
    const graph = consultation();
    await insertConsultation(server.sql, graph);
    await person.admit(graph.branches.id);
    for (const connection of [asClinicPerson(person.token), {}]) {
      const app = postgres(appUrl, { max: 1, onnotice: () => {}, connection });
      try {
        // The person may see the row: what refuses is the settle's own rule (or, alone, its grant).
        if ("role" in connection) {
          expect(await app`select id from patients where id = ${graph.patients.id}`).toHaveLength(1);
        }
        const error = await app`select cv_client_settle('patients', ${graph.patients.id}, null, now())`.catch(
          (e: { code?: string }) => e,
        );
        expect((error as { code?: string }).code).toBe("42501");
        const direct = await app`select count(*) from cv_sync.conflicts`.catch((e: { code?: string }) => e);
        expect((direct as { code?: string }).code).toBe("42501");
      } finally {
        await app.end();
      }
    }
  });

  it("applies as its person: rows of a branch the person does not work at, or configuration without the admin role, are refused one by one", async () => {
    const mine = await seeded();
    const theirs = await seeded({ admit: false });
    const applier = clinicApplier();
    await update(pc.sql, "rooms", mine.rooms.id, { name: "Consultorio 2" });
    const result = await applier.apply([
      ...(await writesOf(mine, ["rooms", "patients", "appointments"])),
      ...(await writesOf(theirs, ["patients", "appointments"])),
    ]);
    expect(result).toMatchObject({ applied: 2, conflicts: 0 });
    expect(result.rejected.map((r) => [r.table, r.id, r.code])).toEqual([
      ["rooms", mine.rooms.id, "unauthorized"],
      ["patients", theirs.patients.id, "unauthorized"],
      ["appointments", theirs.appointments.id, "unauthorized"],
    ]);
    expect(await rowOf(server.sql, "patients", theirs.patients.id)).toBeUndefined();
    expect(await rowOf(server.sql, "rooms", mine.rooms.id)).toMatchObject({ name: mine.rooms.name });
  });

  it("the login alone asks the router's two questions but applies nothing", async () => {
    const graph = await seeded();
    const alone = clinicApplier(null);
    expect(await alone.pendingUp()).toBeGreaterThan(0);
    expect(Number(await alone.logPosition())).toBeGreaterThan(0);
    const error = await alone.apply(await writesOf(graph)).catch((e: unknown) => e);
    expect(error).toMatchObject({
      code: "unauthorized",
      message: expect.stringContaining("a PC writes only as a signed-in person"),
    });
    expect(await rowOf(server.sql, "patients", graph.patients.id)).toBeUndefined();
  });

  it("a session the server refuses fails the call as unauthorized, not as a server that is down", async () => {
    const graph = await seeded();
    const expired = await clinicSession(server.url, { userId: person.userId, expiresInSeconds: -60 });
    let token = expired;
    const applier = clinicApplier(() => token);
    const error = await applier.apply(await writesOf(graph)).catch((e: unknown) => e);
    expect(error).toMatchObject({
      code: "unauthorized",
      message: expect.stringContaining(
        "the clinic server refused the person's session: the clinic session has expired",
      ),
    });
    expect(isTierDown(error)).toBe(false);
    // Signed in again: the same applier works on its next call.
    token = person.token;
    expect(await applier.apply(await writesOf(graph))).toMatchObject({ applied: 5, rejected: [] });
  });

  it("rejects bad input with invalid_input before sending anything", async () => {
    const applier = clinicApplier();
    const bad = applier.apply([{ table: "patients", op: "upsert", id: randomUUID(), row: { id: "x" } }]);
    await expect(bad).rejects.toMatchObject({ code: "invalid_input" });
    expect(() => createClientApplier({})).toThrow(CvError);
  });
});

describe("cv_client_apply on the cloud (a user's session, row-level security)", () => {
  let supabase: LocalSupabase;
  let cloud: postgres.Sql;
  const ROMA_USER = randomUUID();
  let roma: Consultation;
  let polanco: Consultation;

  beforeAll(async () => {
    supabase = await startLocalSupabase({ postgres: sharedServer(), log: () => {} });
    cloud = postgres(supabase.dbUrl, { max: 2, onnotice: () => {} });
    roma = consultation();
    polanco = consultation();
    for (const graph of [roma, polanco]) {
      await cloud`insert into branches ${cloud(graph.branches)}`;
      await cloud`insert into rooms ${cloud(graph.rooms)}`;
      await cloud`insert into profiles ${cloud(graph.profiles)}`;
      // The branch's doctor works there: a booking names only a doctor its writer sees (sql/0004).
      await cloud`insert into user_branches (id, user_id, branch_id) values (${randomUUID()}, ${graph.profiles.id}, ${graph.branches.id})`;
      await insertConsultation(pc.sql, graph);
    }
    await cloud`insert into profiles (id, full_name) values (${ROMA_USER}, 'Recepción Roma')`;
    await cloud`insert into user_branches (id, user_id, branch_id) values (${randomUUID()}, ${ROMA_USER}, ${roma.branches.id})`;
  });
  afterAll(async () => {
    await cloud?.end();
    await supabase?.stop();
  });

  function userClient(token: string) {
    return createClient(supabase.url, supabase.anonKey, {
      accessToken: async () => token,
      realtime: { transport: WebSocket as unknown as WebSocketLikeConstructor },
    });
  }

  it("writes what the user's policies allow and reports the rest as unauthorized", async () => {
    const client = userClient(await supabase.mintUserToken(ROMA_USER));
    const applier = createClientApplier({ supabase: { client, url: supabase.url } });
    appliers.push(applier);
    const writes = [
      ...(await writesOf(roma, ["patients", "appointments"])),
      ...(await writesOf(polanco, ["patients", "appointments"])),
    ];
    const result = await applier.apply(writes);
    expect(result).toMatchObject({ applied: 2, conflicts: 0 });
    expect(result.rejected.map((r) => [r.table, r.id, r.code])).toEqual([
      ["patients", polanco.patients.id, "unauthorized"],
      ["appointments", polanco.appointments.id, "unauthorized"],
    ]);
    const [count] = await cloud<{ n: number }[]>`
      select count(*)::int as n from patients where id in ${cloud([roma.patients.id, polanco.patients.id])}`;
    expect(count?.n).toBe(1);
  });

  it("refuses the anon key outright", async () => {
    const anon = createClient(supabase.url, supabase.anonKey, {
      realtime: { transport: WebSocket as unknown as WebSocketLikeConstructor },
    });
    const applier = createClientApplier({ supabase: { client: anon, url: supabase.url } });
    appliers.push(applier);
    const error = await applier.apply(await writesOf(roma, ["patients"])).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CvError);
    expect((error as CvError).code).toBe("unauthorized");
  });
});
