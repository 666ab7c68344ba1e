import { createMemorySource, type MemorySource, TABLE_NAMES } from "@centrovision/core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { OfflineTier } from "../../src/index.js";
import { openTier, type PcFiles, pcFiles, todayClinic } from "./support.js";

/*
 * The PC's offline copy belongs to one person: when another signs in, what was fetched for the
 * first is gone before the second can read it, except the first one's edits still waiting to be
 * sent (and the parents they need), which must never be lost.
 */

let files: PcFiles;
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
  tier = await openTier(files, { branchId: graph.branches.id });
});

afterEach(async () => {
  await tier.close();
  await server.close();
  await files.remove();
});

describe("whose offline copy", () => {
  it("another person's sign-in clears every row but the pending edits and their parents; the next refresh fetches in full", async () => {
    expect(await tier.claimCopy("person-a")).toBe(false);
    await tier.refresh(server);
    expect(Object.values(await localCounts()).every((count) => count === 1)).toBe(true);
    const patient = await tier.source.table("patients").get(graph.patients.id);
    await tier.source.table("patients").update(
      graph.patients.id,
      { phone: "55 8765 4321" },
      {
        expectedVersion: patient?.version as string,
      },
    );
    expect(await tier.claimCopy("person-a")).toBe(false);
    expect((await localCounts()).appointments).toBe(1);

    expect(await tier.claimCopy("person-b")).toBe(true);
    expect(await localCounts()).toMatchObject({
      patients: 1,
      branches: 1,
      appointments: 0,
      encounters: 0,
      exam_eye: 0,
      diagnoses: 0,
      rooms: 0,
      profiles: 0,
      user_branches: 0,
      user_roles: 0,
    });
    expect((await tier.source.table("patients").get(graph.patients.id))?.phone).toBe("55 8765 4321");
    // Person A's edit waits for them: person B's drains would send it as B's.
    expect(await tier.pendingCount()).toBe(0);

    const report = await tier.refresh(server);
    expect(report.fetchedByTable.appointments).toBe(1);
    expect((await localCounts()).appointments).toBe(1);
    // The pending edit still wins locally until a server takes it.
    expect((await tier.source.table("patients").get(graph.patients.id))?.phone).toBe("55 8765 4321");
  });

  it("the owner survives a restart: the same person keeps the copy, another clears it", async () => {
    await tier.claimCopy("person-a");
    await tier.refresh(server);
    await tier.close();
    tier = await openTier(files, { branchId: graph.branches.id });
    expect(await tier.claimCopy("person-a")).toBe(false);
    expect((await localCounts()).appointments).toBe(1);
    expect(await tier.claimCopy("person-b")).toBe(true);
    expect(Object.values(await localCounts()).every((count) => count === 0)).toBe(true);
  });
});
