import { randomUUID } from "node:crypto";
import type { DataSource, JournalEntry, TableName } from "@centrovision/core";
import { describe, expect, it } from "vitest";
import { createPcRouterHooks } from "../../src/index.js";
import { useClinicServer, useTodayCopy } from "./support.js";

/*
 * At a switch down to the PC's own copy, the router hands it the writes the servers took from this
 * PC (its journal): the copy must hold them as the server returned them, never over a pending local
 * edit or a newer version, and a refresh that began earlier must not undo them.
 */

const clinic = useClinicServer("offline_absorb");

describe("the offline copy takes the PC's acknowledged writes", () => {
  const pc = useTodayCopy(clinic);

  /** Writes through the clinic server as the PC's person and journals it as the router does. */
  async function onClinic<T extends TableName>(
    table: T,
    row: Record<string, unknown>,
  ): Promise<JournalEntry> {
    const stored = (await clinic.source.table(table).upsert(row as never)) as Record<string, unknown>;
    return { tier: "clinic", table, op: "upsert", id: String(stored.id), row: stored, at: Date.now() };
  }

  const newPatient = () => ({
    id: randomUUID(),
    branch_id: pc.graph.branches.id,
    first_name: "Rosa",
    last_name: "Icaza",
    birth_date: "1948-05-02",
    sex: "female",
    phone: "55 7777 0000",
  });

  function booking(patientId: string, hoursAhead: number) {
    const start = new Date(Date.now() + hoursAhead * 3_600_000);
    return {
      id: randomUUID(),
      branch_id: pc.graph.branches.id,
      patient_id: patientId,
      starts_at: start.toISOString(),
      ends_at: new Date(start.getTime() + 1_800_000).toISOString(),
      reason: "Revisión",
      type: "follow_up",
    };
  }

  it("stores new rows as the server returned them, parents first, and counts them", async () => {
    const patient = await onClinic("patients", newPatient());
    const appointment = await onClinic("appointments", booking(patient.id, 2));
    expect(await pc.tier.absorb([patient, appointment])).toEqual({ stored: 2, kept: 0, left: 0 });
    expect(await pc.tier.source.table("appointments").get(appointment.id)).toEqual(appointment.row);
    expect(await pc.tier.source.table("patients").get(patient.id)).toEqual(patient.row);
    // Nothing to send: the server has them.
    expect(await pc.tier.pendingCount()).toBe(0);
    // Twice is the same as once.
    expect(await pc.tier.absorb([patient, appointment])).toEqual({ stored: 0, kept: 2, left: 0 });
  });

  it("is what the PC's router hooks do at a switch to the device, with or without a report callback", async () => {
    const patient = await onClinic("patients", newPatient());
    const appointment = await onClinic("appointments", booking(patient.id, 5));
    await createPcRouterHooks({ device: pc.tier }).carryWrites?.("clinic", "device", [patient, appointment]);
    expect(await pc.tier.source.table("appointments").get(appointment.id)).toEqual(appointment.row);
  });

  it("keeps a pending local edit and a newer version; leaves a row whose parent the copy lacks", async () => {
    const patientId = pc.graph.patients.id;
    const older = await onClinic("patients", { ...pc.graph.patients, phone: "55 1111 2222" });
    await onClinic("patients", { ...pc.graph.patients, phone: "55 3333 4444" });
    await pc.tier.refresh(clinic.source);
    expect(await pc.tier.absorb([older])).toEqual({ stored: 0, kept: 1, left: 0 });
    expect(await pc.tier.source.table("patients").get(patientId)).toMatchObject({ phone: "55 3333 4444" });

    await pc.tier.source.table("patients").update(patientId, { phone: "55 5555 6666" });
    const server = await onClinic("patients", { ...pc.graph.patients, phone: "55 7777 8888" });
    expect(await pc.tier.absorb([server])).toEqual({ stored: 0, kept: 1, left: 0 });
    expect(await pc.tier.source.table("patients").get(patientId)).toMatchObject({ phone: "55 5555 6666" });
    expect(await pc.tier.pendingCount()).toBe(1);

    const stranger = await onClinic("patients", newPatient());
    const orphan = await onClinic("appointments", booking(stranger.id, 3));
    expect(await pc.tier.absorb([orphan])).toEqual({ stored: 0, kept: 0, left: 1 });
    expect(await pc.tier.source.table("appointments").get(orphan.id)).toBeNull();
  });

  it("a refresh that began before the carry neither evicts nor overwrites what it did not see", async () => {
    // The refresh reads the clinic server; its last step waits until the carry is done.
    let release = () => {};
    const carried = new Promise<void>((resolve) => {
      release = resolve;
    });
    let reachedLastStep = () => {};
    const atLastStep = new Promise<void>((resolve) => {
      reachedLastStep = resolve;
    });
    const slow: DataSource = {
      ...clinic.source,
      table: ((name: TableName) => {
        const repo = clinic.source.table(name);
        if (name !== "diagnoses") return repo;
        return {
          ...repo,
          list: async (...args: Parameters<typeof repo.list>) => {
            reachedLastStep();
            await carried;
            return repo.list(...args);
          },
        };
      }) as DataSource["table"],
    };
    const before = pc.tier.syncState().lastSyncAt;
    const refreshing = pc.tier.refresh(slow);
    await atLastStep;
    // The status icon's spinner: this PC is syncing its copy.
    expect(pc.tier.syncState().isSyncing).toBe(true);
    const patient = await onClinic("patients", newPatient());
    const appointment = await onClinic("appointments", booking(patient.id, 4));
    expect(await pc.tier.absorb([patient, appointment])).toMatchObject({ stored: 2 });
    release();
    await refreshing;
    expect(pc.tier.syncState().isSyncing).toBe(false);
    expect(pc.tier.syncState().lastSyncAt).not.toBe(before);
    expect(await pc.tier.source.table("appointments").get(appointment.id)).toEqual(appointment.row);
    expect(await pc.tier.source.table("patients").get(patient.id)).toEqual(patient.row);
    // The next refresh sees them on the server and keeps them as any other row.
    await pc.tier.refresh(clinic.source);
    expect(await pc.tier.source.table("appointments").get(appointment.id)).toEqual(appointment.row);
  });

  describe("between two versions of a row, its lineage decides, not the servers' clocks", () => {
    /**
     * Stamps the clinic server's copy of the graph's patient as a sync apply would (triggers off):
     * a version `version` on top of `base`, written by a server whose clock is `minutes` off.
     */
    async function stampFromAnotherServer(version: string, base: string | null, minutes: number) {
      await clinic.node.sql.begin(async (tx) => {
        await tx`set local session_replication_role = replica`;
        await tx`update patients set phone = '55 0000 1111', version = ${version}, base_version = ${base},
          updated_at = updated_at + make_interval(mins => ${minutes}) where id = ${pc.graph.patients.id}`;
      });
    }

    it("a write made on top of the copy's version is stored, though its server's clock is behind", async () => {
      // The copy's row came from a server whose clock runs 3 minutes ahead of the clinic server's
      // (within the skew the servers allow).
      const ahead = randomUUID();
      await stampFromAnotherServer(ahead, null, 3);
      await pc.tier.refresh(clinic.source);
      expect(await pc.tier.source.table("patients").get(pc.graph.patients.id)).toMatchObject({
        version: ahead,
      });
      // This PC edits the patient on the clinic server: stamped earlier than the copy's version.
      const edit = await onClinic("patients", { ...pc.graph.patients, phone: "55 2222 9999" });
      expect(edit.row).toMatchObject({ base_version: ahead });

      expect(await pc.tier.absorb([edit])).toEqual({ stored: 1, kept: 0, left: 0 });
      expect(await pc.tier.source.table("patients").get(pc.graph.patients.id)).toEqual(edit.row);
    });

    it("the copy's version made on top of the write is kept, though its server's clock is behind", async () => {
      const edit = await onClinic("patients", { ...pc.graph.patients, phone: "55 2222 9999" });
      // Edited again on top of it by a server whose clock runs 3 minutes behind; the copy has that.
      const later = randomUUID();
      await stampFromAnotherServer(later, String(edit.row?.version), -3);
      await pc.tier.refresh(clinic.source);
      expect(await pc.tier.source.table("patients").get(pc.graph.patients.id)).toMatchObject({
        version: later,
      });

      expect(await pc.tier.absorb([edit])).toEqual({ stored: 0, kept: 1, left: 0 });
      expect(await pc.tier.source.table("patients").get(pc.graph.patients.id)).toMatchObject({
        version: later,
      });
    });
  });
});
