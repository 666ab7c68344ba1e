import { randomUUID } from "node:crypto";
import { createSqliteSource, type SqliteSource } from "@centrovision/adapter-sqlite";
import { createMemorySource, type MemorySource, TABLE_NAMES } from "@centrovision/core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createOfflineTier, type OfflineTier, OTHER_PERSONS_EDIT } from "../../src/index.js";
import { type PcFiles, pcFiles, slowed, todayClinic } from "./support.js";

/*
 * The PC's offline copy belongs to one person: when another signs in, what was fetched for the
 * first is gone before the second can read it, except the first one's edits still waiting to be
 * sent (and the parents they need), which must never be lost.
 */

let files: PcFiles;
let store: SqliteSource;
let tier: OfflineTier;
let server: MemorySource;
const graph = todayClinic();

async function localCounts(): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const table of TABLE_NAMES) counts[table] = (await tier.source.table(table).list()).length;
  return counts;
}

beforeEach(async () => {
  server = createMemorySource({ id: "server" });
  for (const table of TABLE_NAMES) await server.table(table).insert(graph[table] as never);
  files = await pcFiles();
  await open();
});

async function open(): Promise<void> {
  store = await createSqliteSource({ path: files.path, key: files.key });
  tier = createOfflineTier({ store, scope: { branchId: graph.branches.id } });
}

afterEach(async () => {
  await tier.close();
  await server.close();
  await files.remove();
});

/** Person A's edit of the patient's phone, refused by a server for good (as a drain records it). */
async function deadLetteredByA(): Promise<void> {
  await editedByA();
  const [entry] = await tier.pending();
  await store.batch((batch) => {
    batch.setRecord("cv-outbox", `patients:${graph.patients.id}`, null);
    batch.setRecord("cv-dead-letters", `patients:${graph.patients.id}`, {
      ...entry,
      code: "constraint",
      message: "refused",
      failedAt: new Date().toISOString(),
    });
  });
}

/** Person A's copy, refreshed, with their unsent edit of the patient's phone. */
async function editedByA(): Promise<string> {
  expect(await tier.claimCopy("person-a")).toBe(false);
  await tier.refresh(server);
  const patient = await tier.source.table("patients").get(graph.patients.id);
  await tier.source
    .table("patients")
    .update(graph.patients.id, { phone: "55 8765 4321" }, { expectedVersion: patient?.version as string });
  return patient?.phone as string;
}

describe("whose offline copy", () => {
  it("another person's sign-in clears every row, A's unsent edit too, put aside for A; the next refresh fetches in full", async () => {
    const serverPhone = await editedByA();
    expect(await tier.claimCopy("person-a")).toBe(false);
    expect((await localCounts()).appointments).toBe(1);

    expect(await tier.claimCopy("person-b")).toBe(true);
    expect(Object.values(await localCounts()).every((count) => count === 0)).toBe(true);
    // Person A's edit waits for them: person B's drains would send it as B's.
    expect(await tier.pendingCount()).toBe(0);

    const report = await tier.refresh(server);
    expect(report.fetchedByTable.appointments).toBe(1);
    expect((await localCounts()).appointments).toBe(1);
    // B reads the patient as the server gave it to B, never A's unsent edit.
    expect((await tier.source.table("patients").get(graph.patients.id))?.phone).toBe(serverPhone);
  });

  it("an edit by B of a row A edited and did not send is refused, and A's edit comes back with A", async () => {
    await editedByA();
    await tier.claimCopy("person-b");
    await tier.refresh(server);
    const seen = await tier.source.table("patients").get(graph.patients.id);
    await expect(
      tier.source.table("patients").update(graph.patients.id, { phone: "55 0000 0000" }),
    ).rejects.toMatchObject({
      code: "conflict",
      constraint: OTHER_PERSONS_EDIT,
      message: expect.stringContaining("another person"),
    });
    expect(await tier.source.table("patients").get(graph.patients.id)).toEqual(seen);
    // A's edit waits on this PC for A, and B is told whose it is; B's own are not counted.
    expect(await tier.waitingForOthers()).toEqual([{ author: "person-a", changes: 1, refused: 0 }]);
    // B's own offline edit of another row is B's.
    const room = await tier.source.table("rooms").update(graph.rooms.id, { name: "Sala B" });
    expect(await tier.pending()).toMatchObject([{ table: "rooms", id: room.id, author: "person-b" }]);
    expect(await tier.waitingForOthers()).toEqual([{ author: "person-a", changes: 1, refused: 0 }]);

    expect(await tier.claimCopy("person-a")).toBe(true);
    expect((await tier.source.table("patients").get(graph.patients.id))?.phone).toBe("55 8765 4321");
    expect(await tier.pending()).toMatchObject([
      { table: "patients", id: graph.patients.id, author: "person-a" },
    ]);
    // B's edited room is put aside for B in turn; the patient's branch, a parent, is back with A.
    expect(await tier.source.table("rooms").get(graph.rooms.id)).toBeNull();
    expect(await tier.source.table("branches").get(graph.branches.id)).not.toBeNull();
    // A's refresh leaves A's edit alone, as before.
    await tier.refresh(server);
    expect((await tier.source.table("patients").get(graph.patients.id))?.phone).toBe("55 8765 4321");
    expect((await tier.source.table("rooms").get(graph.rooms.id))?.name).toBe(graph.rooms.name);

    expect(await tier.waitingForOthers()).toEqual([{ author: "person-b", changes: 1, refused: 0 }]);
    await tier.claimCopy("person-b");
    expect((await tier.source.table("rooms").get(graph.rooms.id))?.name).toBe("Sala B");
    expect(await tier.pending()).toMatchObject([{ table: "rooms", id: graph.rooms.id }]);
  });

  it("a claim cut short (the PC lost power) leaves nothing of A readable to B, and A's edit for A", async () => {
    await editedByA();
    await tier.close();
    store = await createSqliteSource({ path: files.path, key: files.key });
    let batches = 0;
    const cut = new Proxy(store, {
      get: (target, name) =>
        name === "batch"
          ? (...args: Parameters<SqliteSource["batch"]>) =>
              ++batches === 2 ? Promise.reject(new Error("[test] power cut")) : target.batch(...args)
          : Reflect.get(target, name),
    });
    tier = createOfflineTier({ store: cut, scope: { branchId: graph.branches.id } });
    // The first batch puts A's rows aside; the power goes before the rest is evicted.
    await expect(tier.claimCopy("person-b")).rejects.toThrow("power cut");
    await tier.close();
    await open();

    await tier.claimCopy("person-b");
    expect(Object.values(await localCounts()).every((count) => count === 0)).toBe(true);
    expect(await tier.pendingCount()).toBe(0);
    await tier.claimCopy("person-a");
    expect((await tier.source.table("patients").get(graph.patients.id))?.phone).toBe("55 8765 4321");
    expect(await tier.pendingCount()).toBe(1);
  });

  it("a refresh running as another person signs in writes nothing into their copy, and removes nothing of it", async () => {
    // B's new patient, put aside when A signed in, comes back with B while A's refresh is under way.
    await tier.claimCopy("person-b");
    await tier.refresh(server);
    const document = `NEW${randomUUID().slice(0, 8).toUpperCase()}`;
    const created = await tier.source
      .table("patients")
      .insert({ ...graph.patients, id: randomUUID(), document_id: document } as never);
    await tier.claimCopy("person-a");
    const slow = slowed(server, "appointments", "list");
    const refreshing = tier.refresh(slow.source);
    await slow.started;
    const claiming = tier.claimCopy("person-b");
    slow.release();
    await expect(refreshing).rejects.toMatchObject({ code: "conflict" });
    await claiming;
    // Nothing A's refresh read is in B's copy; B's own new patient is, and is still B's to send.
    expect(await tier.source.table("appointments").get(graph.appointments.id)).toBeNull();
    expect(await tier.source.table("patients").get(graph.patients.id)).toBeNull();
    expect(await tier.source.table("patients").get(created.id)).toMatchObject({ version: created.version });
    expect(await tier.pending()).toMatchObject([{ table: "patients", id: created.id, author: "person-b" }]);
  });

  it("an entry from before the file had an owner is the first owner's: its rows are put aside from the next person", async () => {
    await tier.refresh(server);
    await tier.source.table("appointments").update(graph.appointments.id, { reason: "Revisión" });
    expect((await tier.pending())[0]?.author).toBeUndefined();
    await tier.claimCopy("person-a");
    await tier.source.table("patients").update(graph.patients.id, { phone: "55 8765 4321" });
    expect(await tier.pending()).toMatchObject([{ author: "person-a" }, { author: "person-a" }]);
    await tier.claimCopy("person-b");
    expect(await tier.source.table("patients").get(graph.patients.id)).toBeNull();
    expect(await tier.source.table("appointments").get(graph.appointments.id)).toBeNull();
    await tier.claimCopy("person-a");
    expect((await tier.source.table("patients").get(graph.patients.id))?.phone).toBe("55 8765 4321");
    expect((await tier.source.table("appointments").get(graph.appointments.id))?.reason).toBe("Revisión");
  });

  it("A's sign-in shows nothing of B's copy: B's unsent edit of a parent of A's edited row stays B's", async () => {
    await tier.claimCopy("person-a");
    await tier.refresh(server);
    await tier.source.table("appointments").update(graph.appointments.id, { reason: "Revisión A" });
    await tier.claimCopy("person-b");
    await tier.refresh(server);
    // B sees the appointment as the server has it, and edits its patient.
    expect((await tier.source.table("appointments").get(graph.appointments.id))?.reason).toBe(
      graph.appointments.reason,
    );
    await tier.source.table("patients").update(graph.patients.id, { phone: "55 1111 2222" });
    await tier.claimCopy("person-a");
    expect((await tier.source.table("appointments").get(graph.appointments.id))?.reason).toBe("Revisión A");
    expect((await tier.source.table("patients").get(graph.patients.id))?.phone).toBe(graph.patients.phone);
    await tier.claimCopy("person-b");
    expect((await tier.source.table("patients").get(graph.patients.id))?.phone).toBe("55 1111 2222");
    expect(await tier.pending()).toMatchObject([{ table: "patients", author: "person-b" }]);
  });

  it("an offline write while a sign-in changes whose copy it is, is refused, not lost", async () => {
    await tier.claimCopy("person-a");
    const slow = slowed(server, "appointments", "list");
    const refreshing = tier.refresh(slow.source);
    await slow.started;
    const claiming = tier.claimCopy("person-b");
    // The claim waits for A's refresh to stop; the copy is nobody's meanwhile.
    await new Promise((resolve) => setTimeout(resolve, 50));
    await expect(
      tier.source.table("rooms").insert({ ...graph.rooms, id: randomUUID(), name: "Sala nueva" } as never),
    ).rejects.toMatchObject({ code: "conflict", message: expect.stringContaining("a sign-in") });
    slow.release();
    await refreshing.catch(() => {});
    await claiming;
    expect(await tier.pending()).toEqual([]);
    await tier.refresh(server);
    const room = await tier.source
      .table("rooms")
      .insert({ ...graph.rooms, id: randomUUID(), name: "Sala nueva" } as never);
    expect(await tier.pending()).toMatchObject([{ id: room.id, author: "person-b" }]);
  });

  it("the same person signing in again stops none of their own work", async () => {
    await tier.claimCopy("person-a");
    const slow = slowed(server, "appointments", "list");
    const refreshing = tier.refresh(slow.source);
    await slow.started;
    expect(await tier.claimCopy("person-a")).toBe(false);
    slow.release();
    expect((await refreshing).fetchedByTable.appointments).toBe(1);
  });

  it("another person's double booking is neither listed nor settled", async () => {
    await tier.claimCopy("person-a");
    const notice = {
      bookingId: graph.appointments.id,
      otherId: randomUUID(),
      shared: ["doctor_id"],
      foundAt: new Date().toISOString(),
      author: "person-a",
    };
    await store.batch((batch) =>
      batch.setRecord("cv-double-bookings", `${notice.bookingId}:${notice.otherId}`, notice),
    );
    await tier.claimCopy("person-b");
    expect(await tier.doubleBookings()).toEqual([]);
    await expect(tier.settleDoubleBooking(notice.bookingId, notice.otherId)).rejects.toMatchObject({
      code: "not_found",
    });
    await tier.claimCopy("person-a");
    expect(await tier.doubleBookings()).toEqual([notice]);
  });

  it("a dead letter discarded as another person signs in leaves their copy alone", async () => {
    await deadLetteredByA();
    // What A's session reads of the patient, slowly.
    const asA = slowed(server, "patients", "get");
    const discarding = tier.discardDeadLetter("patients", graph.patients.id, asA.source);
    await asA.started;
    const claiming = tier.claimCopy("person-b");
    asA.release();
    await expect(discarding).rejects.toMatchObject({ code: "conflict" });
    await claiming;
    expect(await tier.source.table("patients").get(graph.patients.id)).toBeNull();
    await tier.claimCopy("person-a");
    expect(await tier.deadLetters()).toMatchObject([{ id: graph.patients.id }]);
    expect((await tier.source.table("patients").get(graph.patients.id))?.phone).toBe("55 8765 4321");
  });

  it("another person's dead letters are neither listed, retried nor discarded", async () => {
    await deadLetteredByA();
    expect(await tier.deadLetters()).toHaveLength(1);
    await tier.claimCopy("person-b");
    expect(await tier.deadLetters()).toEqual([]);
    expect(await tier.waitingForOthers()).toEqual([{ author: "person-a", changes: 0, refused: 1 }]);
    await expect(tier.retryDeadLetter("patients", graph.patients.id)).rejects.toMatchObject({
      code: "not_found",
    });
    await expect(tier.discardDeadLetter("patients", graph.patients.id, server)).rejects.toMatchObject({
      code: "not_found",
    });
    await tier.claimCopy("person-a");
    expect(await tier.deadLetters()).toMatchObject([{ id: graph.patients.id, author: "person-a" }]);
    expect((await tier.source.table("patients").get(graph.patients.id))?.phone).toBe("55 8765 4321");
  });

  it("the owner survives a restart: the same person keeps the copy, another clears it", async () => {
    await tier.claimCopy("person-a");
    await tier.refresh(server);
    await tier.close();
    await open();
    expect(await tier.claimCopy("person-a")).toBe(false);
    expect((await localCounts()).appointments).toBe(1);
    expect(await tier.claimCopy("person-b")).toBe(true);
    expect(Object.values(await localCounts()).every((count) => count === 0)).toBe(true);
  });
});
