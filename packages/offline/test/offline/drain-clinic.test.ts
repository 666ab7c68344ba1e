import { randomUUID } from "node:crypto";
import { CvError } from "@centrovision/core";
import { rowOf, update } from "@centrovision/testkit/nodes";
import { describe, expect, it, vi } from "vitest";
import type { ClientApplier, OfflineTier } from "../../src/index.js";
import { gate, openTier, pcFiles, useClinicServer, useTodayCopy } from "./support.js";

/*
 * The PC works offline on its SQLite copy, then drains to the clinic server through
 * cv_client_apply with a centrovision_app login acting as its signed-in person (a clinic session)
 * — what a PC really holds. Stored state is checked by direct SQL on the clinic.node.
 */

const clinic = useClinicServer("offline_drain");

describe("offline writes drain to the clinic server", () => {
  const pc = useTodayCopy(clinic);

  const newPatient = () => ({
    id: randomUUID(),
    branch_id: pc.graph.branches.id,
    first_name: "Rosa",
    last_name: "Icaza",
    document_id: `ICRO${randomUUID().slice(0, 8).toUpperCase()}`,
    birth_date: "1948-05-02",
    sex: "female" as const,
    phone: "55 7777 0000",
  });

  /** Books `patientId` offline, `hoursAhead` from now. */
  function bookOffline(patientId: string, hoursAhead: number) {
    const start = new Date(Date.now() + hoursAhead * 3_600_000);
    return pc.tier.source.table("appointments").insert({
      id: randomUUID(),
      branch_id: pc.graph.branches.id,
      patient_id: patientId,
      starts_at: start.toISOString(),
      ends_at: new Date(start.getTime() + 1_800_000).toISOString(),
      reason: "Primera vez",
      type: "first_visit",
    });
  }

  async function offlineEdits() {
    const patient = await pc.tier.source.table("patients").insert(newPatient());
    const appointment = await bookOffline(patient.id, 2);
    const arrived = await pc.tier.source
      .table("appointments")
      .update(pc.graph.appointments.id, { status: "checked_in" });
    return { patient, appointment, arrived };
  }

  it("records each write with its base version, shows it on reads, and drains parents first", async () => {
    const { patient, appointment, arrived } = await offlineEdits();
    expect(await pc.tier.pendingCount()).toBe(3);
    expect(await pc.tier.source.table("appointments").get(pc.graph.appointments.id)).toMatchObject({
      status: "checked_in",
    });
    const pending = await pc.tier.pending();
    const serverVersion = (await rowOf(clinic.node.sql, "appointments", pc.graph.appointments.id))?.version;
    expect(pending.find((e) => e.id === pc.graph.appointments.id)).toMatchObject({
      op: "upsert",
      baseVersion: serverVersion,
      version: arrived.version,
    });

    // A second edit of the same row folds into its entry: one fast-forward from the server's version.
    const again = await pc.tier.source
      .table("appointments")
      .update(pc.graph.appointments.id, { status: "in_progress" });
    expect(await pc.tier.pendingCount()).toBe(3);

    const report = await pc.tier.drain(clinic.applier);
    expect(report).toMatchObject({ sent: 3, applied: 3, conflicts: 0, deadLettered: 0, remaining: 0 });
    expect(await pc.tier.pendingCount()).toBe(0);
    expect(await rowOf(clinic.node.sql, "patients", patient.id)).toMatchObject({ version: patient.version });
    expect(await rowOf(clinic.node.sql, "appointments", appointment.id)).toMatchObject({
      version: appointment.version,
    });
    expect(await rowOf(clinic.node.sql, "appointments", pc.graph.appointments.id)).toMatchObject({
      status: "in_progress",
      version: again.version,
    });
    expect(await pc.tier.drain(clinic.applier)).toMatchObject({ sent: 0, remaining: 0 });
  });

  it("sends a person's offline writes only while the copy is theirs: another person's wait for them", async () => {
    const [first, second] = [randomUUID(), randomUUID()];
    await pc.tier.claimCopy(first);
    await pc.tier.refresh(clinic.source);
    const patient = await pc.tier.source.table("patients").insert(newPatient());
    expect(await pc.tier.pending()).toMatchObject([{ id: patient.id, author: first }]);
    // Someone else signs in on this PC: a server would take the write as theirs.
    await pc.tier.claimCopy(second);
    expect(await pc.tier.pendingCount()).toBe(0);
    expect(await pc.tier.drain(clinic.applier)).toMatchObject({ sent: 0, remaining: 0 });
    expect(await rowOf(clinic.node.sql, "patients", patient.id)).toBeUndefined();
    // Its author is back: it goes.
    await pc.tier.claimCopy(first);
    expect(await pc.tier.pendingCount()).toBe(1);
    expect(await pc.tier.drain(clinic.applier)).toMatchObject({ sent: 1, applied: 1, remaining: 0 });
    expect(await rowOf(clinic.node.sql, "patients", patient.id)).toMatchObject({ version: patient.version });
  });

  /** The clinic server's applier, its first call held until `release()`; counts calls made after `late()`. */
  function heldApplier() {
    const held = gate();
    const counts = { calls: 0, late: 0, lateFrom: Number.POSITIVE_INFINITY };
    const applier: ClientApplier = {
      ...clinic.applier,
      apply: async (writes, options) => {
        if (++counts.calls > counts.lateFrom) counts.late++;
        const applied = clinic.applier.apply(writes, options);
        if (counts.calls === 1) await held.wait();
        return applied;
      },
    };
    return { applier, ...held, counts, late: () => (counts.lateFrom = counts.calls) };
  }

  /** A PC of its own for one test (this branch, not refreshed), draining `drainBatchSize` entries a call. */
  async function ownPc(drainBatchSize: number, work: (tier: OfflineTier) => Promise<void>): Promise<void> {
    const files = await pcFiles();
    const tier = await openTier(files, { branchId: pc.graph.branches.id }, { drainBatchSize });
    try {
      await work(tier);
    } finally {
      await tier.close();
      await files.remove();
    }
  }

  async function expectOnClinic(patients: readonly { id: string; version: string }[]): Promise<void> {
    for (const patient of patients) {
      expect(await rowOf(clinic.node.sql, "patients", patient.id)).toMatchObject({
        version: patient.version,
      });
    }
  }

  it("a drain running as another person signs in sends nothing more, loses nothing, and the rest goes with its author", async () => {
    const [first, second] = [randomUUID(), randomUUID()];
    await ownPc(1, async (tier) => {
      await tier.claimCopy(first);
      await tier.refresh(clinic.source);
      const written = [];
      for (let n = 0; n < 3; n++) written.push(await tier.source.table("patients").insert(newPatient()));
      const held = heldApplier();
      const draining = tier.drain(held.applier);
      await held.started;
      // The first batch is on the server; the next person's session comes once the claim ends.
      held.late();
      const claiming = tier.claimCopy(second);
      held.release();
      await draining;
      expect(await claiming).toBe(true);
      expect(held.counts.late).toBe(0);
      expect(await tier.pendingCount()).toBe(0);
      expect(await tier.source.table("patients").get(written[1]?.id as string)).toBeNull();

      await tier.claimCopy(first);
      expect(await tier.pendingCount()).toBe(2);
      expect(await tier.drain(clinic.applier)).toMatchObject({ sent: 2, remaining: 0 });
      await expectOnClinic(written);
    });
  });

  it("a drain asked for while another person signs in is theirs, after the claim, not the one that stopped", async () => {
    const [first, second] = [randomUUID(), randomUUID()];
    await pc.tier.claimCopy(second);
    await pc.tier.refresh(clinic.source);
    const theirs = await pc.tier.source.table("patients").insert(newPatient());
    await pc.tier.claimCopy(first);
    await pc.tier.refresh(clinic.source);
    await pc.tier.source.table("patients").insert(newPatient());
    const held = heldApplier();
    const stopping = pc.tier.drain(held.applier);
    await held.started;
    const claiming = pc.tier.claimCopy(second);
    const next = pc.tier.drain(clinic.applier);
    held.release();
    await claiming;
    expect(await next).toMatchObject({ sent: 1, remaining: 0 });
    expect(await stopping).toMatchObject({ sent: 1, remaining: 0 });
    expect(await rowOf(clinic.node.sql, "patients", theirs.id)).toMatchObject({ version: theirs.version });
    expect(await pc.tier.pendingCount()).toBe(0);
  });

  it("the delete a drain records (a row deleted while its insert was on the server) stays its author's", async () => {
    const [first, second] = [randomUUID(), randomUUID()];
    await pc.tier.claimCopy(first);
    await pc.tier.refresh(clinic.source);
    const patient = await pc.tier.source.table("patients").insert(newPatient());
    const held = heldApplier();
    const draining = pc.tier.drain(held.applier);
    await held.started;
    await pc.tier.source.table("patients").delete(patient.id);
    held.release();
    await draining;
    expect(await pc.tier.pending()).toMatchObject([{ id: patient.id, op: "delete", author: first }]);
    await pc.tier.claimCopy(second);
    expect(await pc.tier.drain(clinic.applier)).toMatchObject({ sent: 0, remaining: 0 });
    expect(await rowOf(clinic.node.sql, "patients", patient.id)).toMatchObject({ version: patient.version });
    await pc.tier.claimCopy(first);
    expect(await pc.tier.drain(clinic.applier)).toMatchObject({ sent: 1, remaining: 0 });
    expect(await rowOf(clinic.node.sql, "patients", patient.id)).toBeUndefined();
  });

  it("a reply lost after the server committed is resent and skipped: nothing doubles", async () => {
    const { patient } = await offlineEdits();
    const lossy: ClientApplier = {
      ...clinic.applier,
      apply: async (writes, options) => {
        await clinic.applier.apply(writes, options);
        throw new CvError("unavailable", "[test] the reply was lost on the way back");
      },
    };
    await expect(pc.tier.drain(lossy)).rejects.toMatchObject({ code: "unavailable" });
    expect(await pc.tier.pendingCount()).toBe(3);
    expect(await pc.tier.drain(clinic.applier)).toMatchObject({
      sent: 3,
      applied: 0,
      skipped: 3,
      remaining: 0,
    });
    const [count] = await clinic.node.sql<{ n: number }[]>`
      select count(*)::int as n from cv_sync.change_log where row_id = ${patient.id}`;
    expect(count?.n).toBe(1);
  });

  it("an offline edit against a concurrent server edit ends as a conflict with both versions kept", async () => {
    const offline = await pc.tier.source
      .table("patients")
      .update(pc.graph.patients.id, { phone: "55 1010 2020" });
    await update(clinic.node.sql, "patients", pc.graph.patients.id, { phone: "55 3030 4040" });
    const serverEdit = await rowOf(clinic.node.sql, "patients", pc.graph.patients.id);

    expect(await pc.tier.drain(clinic.applier)).toMatchObject({
      conflicts: 1,
      remaining: 0,
      deadLettered: 0,
    });
    const conflicts = await clinic.node.sql<
      {
        local_version: string;
        remote_version: string;
        local_row: { phone: string };
        remote_row: { phone: string };
      }[]
    >`select local_version, remote_version, local_row, remote_row from cv_sync.conflicts
      where row_id = ${pc.graph.patients.id}`;
    expect(conflicts).toHaveLength(1);
    const [conflict] = conflicts;
    expect([conflict?.local_version, conflict?.remote_version].sort()).toEqual(
      [offline.version, serverEdit?.version].sort(),
    );
    expect([conflict?.local_row.phone, conflict?.remote_row.phone].sort()).toEqual([
      "55 1010 2020",
      "55 3030 4040",
    ]);
  });

  describe("a booking made offline is checked again for double booking when it arrives", () => {
    const HOUR = 3_600_000;
    /** An appointment of the branch's doctor, `minutes` after `hoursAhead` from now, 30 minutes long. */
    const slot = (patientId: string, hoursAhead: number, minutes = 0) => {
      const start = new Date(Math.floor(Date.now() / HOUR) * HOUR + hoursAhead * HOUR + minutes * 60_000);
      return {
        id: randomUUID(),
        branch_id: pc.graph.branches.id,
        patient_id: patientId,
        doctor_id: pc.graph.profiles.id,
        starts_at: start.toISOString(),
        ends_at: new Date(start.getTime() + 1_800_000).toISOString(),
        reason: "Revisión",
        type: "follow_up" as const,
      };
    };
    const statusOf = async (id: string) => (await rowOf(clinic.node.sql, "appointments", id))?.status;

    it("lists a clash for the person who booked it, not for the next person on this PC", async () => {
      const [first, second] = [randomUUID(), randomUUID()];
      await pc.tier.claimCopy(first);
      await pc.tier.refresh(clinic.source);
      const taken = slot(pc.graph.patients.id, 5);
      await clinic.node.sql`insert into appointments ${clinic.node.sql(taken)}`;
      const clash = await pc.tier.source.table("appointments").insert(slot(pc.graph.patients.id, 5, 15));
      expect(await pc.tier.drain(clinic.applier)).toMatchObject({ doubleBookings: 1, remaining: 0 });
      const listed = [expect.objectContaining({ bookingId: clash.id, otherId: taken.id, author: first })];
      expect(await pc.tier.doubleBookings()).toEqual(listed);
      await pc.tier.claimCopy(second);
      expect(await pc.tier.doubleBookings()).toEqual([]);
      await pc.tier.claimCopy(first);
      expect(await pc.tier.doubleBookings()).toEqual(listed);
    });

    it("keeps both, and lists each clash on the PC until a person settles it", async () => {
      // Booked at the clinic by someone else while this PC was offline: the doctor at 5:00, the patient at 7:00.
      const otherPatient = { ...newPatient(), id: randomUUID() };
      await clinic.node.sql`insert into patients ${clinic.node.sql(otherPatient)}`;
      const doctorTaken = slot(otherPatient.id, 5);
      const patientTaken = { ...slot(pc.graph.patients.id, 7), doctor_id: null };
      await clinic.node.sql`insert into appointments ${clinic.node.sql([doctorTaken, patientTaken])}`;

      // Offline, the PC's copy shows neither: the receptionist books both slots, and checks a patient in.
      const doctorClash = await pc.tier.source
        .table("appointments")
        .insert(slot(pc.graph.patients.id, 5, 15));
      const patientClash = await pc.tier.source
        .table("appointments")
        .insert({ ...slot(pc.graph.patients.id, 7, 15), doctor_id: null });
      await pc.tier.source.table("appointments").update(pc.graph.appointments.id, { status: "checked_in" });

      expect(await pc.tier.drain(clinic.applier)).toMatchObject({
        applied: 3,
        conflicts: 0,
        doubleBookings: 2,
        deadLettered: 0,
        remaining: 0,
      });
      // Nothing lost: both bookings are in the agenda, next to the ones they clash with.
      for (const id of [doctorClash.id, patientClash.id, doctorTaken.id, patientTaken.id]) {
        expect(await statusOf(id)).toBe("scheduled");
      }
      // The check-in moved no slot: only the two bookings are listed.
      expect(await pc.tier.doubleBookings()).toEqual([
        expect.objectContaining({
          bookingId: doctorClash.id,
          otherId: doctorTaken.id,
          shared: ["doctor_id"],
        }),
        expect.objectContaining({
          bookingId: patientClash.id,
          otherId: patientTaken.id,
          shared: ["patient_id"],
        }),
      ]);

      // Sent again (a reply lost): the server skips it and finds nothing new.
      const again = await clinic.applier.apply([
        { table: "appointments", op: "upsert", id: doctorClash.id, row: doctorClash },
      ]);
      expect(again).toMatchObject({ skipped: 1, doubleBookings: [] });

      await pc.tier.settleDoubleBooking(doctorClash.id, doctorTaken.id);
      expect((await pc.tier.doubleBookings()).map((n) => n.bookingId)).toEqual([patientClash.id]);
      await expect(pc.tier.settleDoubleBooking(doctorClash.id, doctorTaken.id)).rejects.toMatchObject({
        code: "not_found",
      });
    });

    it("is not rechecked for a write carried from a tier that acknowledged it", async () => {
      const taken = slot(pc.graph.patients.id, 9);
      await clinic.node.sql`insert into appointments ${clinic.node.sql(taken)}`;
      // A stored row, as the router carries one acknowledged by the cloud (which checked it).
      const carried = await pc.tier.source.table("appointments").insert(slot(pc.graph.patients.id, 9, 10));
      const result = await clinic.applier.apply(
        [{ table: "appointments", op: "upsert", id: carried.id, row: carried }],
        { mode: "carry" },
      );
      expect(result).toMatchObject({ applied: 1, conflicts: 0, doubleBookings: [] });
    });
  });

  it("a write refused for good goes to the dead-letter list and the rest still arrive", async () => {
    const clash = newPatient();
    const good = await pc.tier.source.table("patients").insert(newPatient());
    await pc.tier.source.table("patients").insert(clash);
    // Meanwhile someone registered another patient with the same document at the clinic.
    await clinic.node.sql`insert into patients ${clinic.node.sql({ ...clash, id: randomUUID() })}`;

    const report = await pc.tier.drain(clinic.applier);
    expect(report).toMatchObject({ deadLettered: 1, remaining: 0 });
    expect(await rowOf(clinic.node.sql, "patients", good.id)).toBeDefined();
    const letters = await pc.tier.deadLetters();
    expect(letters).toEqual([
      expect.objectContaining({ table: "patients", id: clash.id, op: "upsert", code: "constraint" }),
    ]);
    expect(letters[0]?.message).not.toContain(clash.document_id);
    expect(await pc.tier.pendingCount()).toBe(0);

    // Retrying without a fix fails the same way; discarding drops the local edit.
    await pc.tier.retryDeadLetter("patients", clash.id);
    expect(await pc.tier.pendingCount()).toBe(1);
    expect(await pc.tier.drain(clinic.applier)).toMatchObject({ deadLettered: 1 });
    await pc.tier.discardDeadLetter("patients", clash.id, clinic.source);
    expect(await pc.tier.deadLetters()).toEqual([]);
    expect(await pc.tier.source.table("patients").get(clash.id)).toBeNull();
    await expect(pc.tier.retryDeadLetter("patients", clash.id)).rejects.toMatchObject({ code: "not_found" });
  });

  it("a row created and deleted offline sends nothing; deleting a server row sends a versioned delete", async () => {
    const temp = await pc.tier.source.table("patients").insert(newPatient());
    await pc.tier.source.table("patients").delete(temp.id);
    const diagnosis = pc.graph.diagnoses.id;
    await pc.tier.source.table("diagnoses").delete(diagnosis);
    expect(await pc.tier.pending()).toEqual([
      expect.objectContaining({ table: "diagnoses", id: diagnosis, op: "delete", version: null }),
    ]);
    expect(await pc.tier.drain(clinic.applier)).toMatchObject({ remaining: 0, deadLettered: 0 });
    expect(await rowOf(clinic.node.sql, "diagnoses", diagnosis)).toBeUndefined();
    expect(await rowOf(clinic.node.sql, "patients", temp.id)).toBeUndefined();
  });

  describe("a row deleted on this PC while its upsert is on the server", () => {
    /** The clinic server's applier, with `meanwhile` run after the server answered, before the PC records it. */
    const deletingMeanwhile = (meanwhile: () => Promise<unknown>): ClientApplier => ({
      ...clinic.applier,
      apply: async (writes, options) => {
        const result = await clinic.applier.apply(writes, options);
        await meanwhile();
        return result;
      },
    });

    it("is deleted there by the next drain when the server took the upsert", async () => {
      const patient = await pc.tier.source.table("patients").insert(newPatient());
      // Registered offline; the receptionist deletes the duplicate as the server commits the insert.
      const drain = pc.tier.drain(
        deletingMeanwhile(() => pc.tier.source.table("patients").delete(patient.id)),
      );
      expect(await drain).toMatchObject({ applied: 1, deadLettered: 0, remaining: 1 });
      expect(await rowOf(clinic.node.sql, "patients", patient.id)).toBeDefined();
      expect(await pc.tier.pending()).toEqual([
        expect.objectContaining({
          id: patient.id,
          op: "delete",
          baseVersion: patient.version,
          version: null,
        }),
      ]);

      expect(await pc.tier.drain(clinic.applier)).toMatchObject({ applied: 1, remaining: 0 });
      expect(await rowOf(clinic.node.sql, "patients", patient.id)).toBeUndefined();
      expect(await pc.tier.source.table("patients").get(patient.id)).toBeNull();
    });

    it("leaves no dead letter when the server refused it; a delete of the server's version still goes", async () => {
      // Reception registered two patients at the clinic meanwhile; offline, this PC registered one
      // with the first one's document, and corrected a known patient's to the second one's: both
      // refused (constraint).
      const clash = newPatient();
      const other = newPatient();
      await clinic.node.sql`insert into patients ${clinic.node.sql([{ ...clash, id: randomUUID() }, other])}`;
      const known = newPatient();
      const visit = { ...pc.graph.appointments, id: randomUUID(), patient_id: known.id };
      await clinic.node.sql`insert into patients ${clinic.node.sql(known)}`;
      await clinic.node.sql`insert into appointments ${clinic.node.sql(visit)}`;
      await pc.tier.refresh(clinic.source);
      const created = await pc.tier.source.table("patients").insert(clash);
      await pc.tier.source.table("patients").update(known.id, { document_id: other.document_id });
      const serverVersion = (await rowOf(clinic.node.sql, "patients", known.id))?.version;

      // As the server refuses them, the receptionist deletes both (the known one with its visit).
      const report = await pc.tier.drain(
        deletingMeanwhile(async () => {
          await pc.tier.source.table("patients").delete(created.id);
          await pc.tier.source.table("appointments").delete(visit.id);
          await pc.tier.source.table("patients").delete(known.id);
        }),
      );
      expect(report).toMatchObject({ sent: 0, deadLettered: 0, remaining: 2 });
      expect(await pc.tier.deadLetters()).toEqual([]);
      expect(await pc.tier.pending()).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ id: known.id, op: "delete", baseVersion: serverVersion }),
          expect.objectContaining({ id: visit.id, op: "delete" }),
        ]),
      );

      expect(await pc.tier.drain(clinic.applier)).toMatchObject({
        applied: 2,
        deadLettered: 0,
        remaining: 0,
      });
      expect(await rowOf(clinic.node.sql, "patients", known.id)).toBeUndefined();
      expect(await rowOf(clinic.node.sql, "patients", created.id)).toBeUndefined();
    });
  });

  it("an entry whose row left the copy without a delete (a cascade) leaves the outbox at the next drain", async () => {
    // A staff member of the branch, in the copy; this PC gives them a role offline.
    const staff = { id: randomUUID(), full_name: "Enf. Marta Olvera" };
    await clinic.node.sql`insert into profiles ${clinic.node.sql(staff)}`;
    await clinic.node.sql`insert into user_branches ${clinic.node.sql({
      id: randomUUID(),
      user_id: staff.id,
      branch_id: pc.graph.branches.id,
    })}`;
    await pc.tier.refresh(clinic.source);
    const role = await pc.tier.source
      .table("user_roles")
      .insert({ id: randomUUID(), user_id: staff.id, role: "nurse" });
    // The profile is deleted by a write this PC made on the cloud, carried down at a switch: its
    // roles go with it (ON DELETE CASCADE), the one waiting in the outbox too.
    const removed = await pc.tier.absorb([
      { tier: "cloud", table: "profiles", op: "delete", id: staff.id, row: null, at: Date.now() },
    ]);
    expect(removed).toMatchObject({ stored: 1 });
    expect(await pc.tier.source.table("user_roles").get(role.id)).toBeNull();
    expect(await pc.tier.pending()).toEqual([expect.objectContaining({ id: role.id, op: "upsert" })]);

    // Nothing to send: the entry goes, and the outbox can empty (the router fails back only at 0).
    expect(await pc.tier.drain(clinic.applier)).toMatchObject({ sent: 0, deadLettered: 0, remaining: 0 });
    expect(await pc.tier.pendingCount()).toBe(0);
  });

  it("an edit stamped by a PC clock far ahead is refused alone, and goes once edited again with the clock right", async () => {
    const good = await pc.tier.source.table("patients").insert(newPatient());
    // The PC's clock jumps to 9999 (a flat CMOS battery) while it edits a patient offline ...
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(new Date("9999-06-01T00:00:00.000Z"));
    try {
      await pc.tier.source.table("patients").update(pc.graph.patients.id, { phone: "55 1010 2020" });
    } finally {
      vi.useRealTimers();
    }
    // ... which reception edited at the clinic meanwhile: the stamp would order the settle.
    await update(clinic.node.sql, "patients", pc.graph.patients.id, { phone: "55 3030 4040" });

    expect(await pc.tier.drain(clinic.applier)).toMatchObject({
      sent: 1,
      applied: 1,
      conflicts: 0,
      deadLettered: 1,
      remaining: 0,
    });
    expect(await rowOf(clinic.node.sql, "patients", good.id)).toMatchObject({ version: good.version });
    expect(await rowOf(clinic.node.sql, "patients", pc.graph.patients.id)).toMatchObject({
      phone: "55 3030 4040",
    });
    const letters = await pc.tier.deadLetters();
    expect(letters).toEqual([
      expect.objectContaining({ id: pc.graph.patients.id, op: "upsert", code: "invalid_input" }),
    ]);
    expect(letters[0]?.message).toMatch(/clock/);
    expect(await pc.tier.pendingCount()).toBe(0);

    // The clock set right, the receptionist saves the record again: back in the outbox, and it goes.
    const again = await pc.tier.source
      .table("patients")
      .update(pc.graph.patients.id, { phone: "55 1010 2021" });
    expect(await pc.tier.deadLetters()).toEqual([]);
    expect(await pc.tier.pendingCount()).toBe(1);
    expect(await pc.tier.drain(clinic.applier)).toMatchObject({
      conflicts: 1,
      deadLettered: 0,
      remaining: 0,
    });
    expect(await rowOf(clinic.node.sql, "patients", pc.graph.patients.id)).toMatchObject({
      phone: "55 1010 2021",
      version: again.version,
    });
    expect(await pc.tier.pendingCount()).toBe(0);
  });

  it("a write whose parent the server lacks yet waits in the outbox, then arrives", async () => {
    // A patient on today's agenda reaches the PC's copy; then the clinic server lacks it (as if it
    // had not received it yet), while the PC's copy still has it.
    const patient = newPatient();
    const visit = { ...pc.graph.appointments, id: randomUUID(), patient_id: patient.id };
    await clinic.node.sql`insert into patients ${clinic.node.sql(patient)}`;
    await clinic.node.sql`insert into appointments ${clinic.node.sql(visit)}`;
    await pc.tier.refresh(clinic.source);
    await clinic.node.sql`delete from appointments where id = ${visit.id}`;
    const [held] = await clinic.node.sql`delete from patients where id = ${patient.id} returning *`;
    const appointment = await bookOffline(patient.id, 3);
    expect(await pc.tier.drain(clinic.applier)).toMatchObject({ deferred: 1, deadLettered: 0, remaining: 1 });
    expect(await pc.tier.pending()).toEqual([
      expect.objectContaining({ id: appointment.id, parentWaits: 1 }),
    ]);

    await clinic.node.sql`insert into patients ${clinic.node.sql(held as Record<string, never>)}`;
    expect(await pc.tier.drain(clinic.applier)).toMatchObject({ applied: 1, deferred: 0, remaining: 0 });
    expect(await rowOf(clinic.node.sql, "appointments", appointment.id)).toMatchObject({
      version: appointment.version,
    });
  });
  it("a server that stops answering mid-drain keeps the batches it committed out of the outbox, the rest sent next time", async () => {
    await ownPc(2, async (tier) => {
      await tier.refresh(clinic.source);
      const written = [];
      for (let n = 0; n < 5; n++) written.push(await tier.source.table("patients").insert(newPatient()));
      let calls = 0;
      const failing: ClientApplier = {
        ...clinic.applier,
        apply: (writes, options) =>
          ++calls === 2
            ? Promise.reject(new CvError("unavailable", "[test] the clinic server stopped answering"))
            : clinic.applier.apply(writes, options),
      };
      await expect(tier.drain(failing)).rejects.toMatchObject({ code: "unavailable" });
      expect(await tier.pendingCount()).toBe(3);
      expect(await tier.drain(clinic.applier)).toMatchObject({ applied: 3, remaining: 0 });
      await expectOnClinic(written);
    });
  });
});
