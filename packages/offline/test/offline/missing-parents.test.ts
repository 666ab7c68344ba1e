import { randomUUID } from "node:crypto";
import { CvError, type DataSource, type TableName } from "@centrovision/core";
import { describe, expect, it } from "vitest";
import { openTier, todayClinic, useClinicServer, useTodayCopy } from "./support.js";

/*
 * Rows the copy cannot hold, for a parent it lacks. A patient registered at another branch, with an
 * appointment at the PC's: the person sees the patient (through the appointment) but not that
 * branch's row, and the copy holds no row without its parents. A patient the PC's person deleted
 * offline, booked again on the server. Before, each failed the PC's refresh, and every one after it.
 */

const clinic = useClinicServer("offline_missing_parents");
const copy = useTodayCopy(clinic);

/** A patient of `branch` with an appointment today at the copy's branch, on the clinic server. */
async function bookedToday(branch: string, patient = randomUUID()) {
  const { graph } = copy;
  const appointment = randomUUID();
  const slot = todayClinic().appointments;
  await clinic.node.sql.begin(async (tx) => {
    await tx`insert into patients (id, branch_id, first_name, last_name, birth_date, sex, phone)
      values (${patient}, ${branch}, 'Ana', 'Pérez', '1960-02-02', 'female', '55 1111 2222')
      on conflict (id) do nothing`;
    await tx`insert into appointments (id, branch_id, patient_id, doctor_id, starts_at, ends_at, reason, type)
      values (${appointment}, ${graph.branches.id as string}, ${patient}, ${graph.profiles.id as string},
        ${slot.starts_at as string}, ${slot.ends_at as string}, 'Control', 'follow_up')`;
  });
  return { patient, appointment };
}

/** A branch the PC's person is not admitted to. */
async function otherBranch(): Promise<string> {
  const branch = randomUUID();
  await clinic.node.sql`insert into branches (id, code, name, address)
    values (${branch}, ${`POL-${branch.slice(0, 4).toUpperCase()}`}, 'Polanco', 'Av. Presidente Masaryk 8')`;
  return branch;
}

/** `source` with its server lost when the refresh reaches `table`: the cut in the middle of a refresh. */
function cutAt(source: DataSource, table: TableName): DataSource {
  return {
    ...source,
    table: ((name: TableName) => {
      const repository = source.table(name);
      if (name !== table) return repository;
      return {
        ...repository,
        list: async () => {
          throw new CvError("unavailable", "[test] the clinic server stopped answering");
        },
      };
    }) as DataSource["table"],
  };
}

describe("a patient of another branch in the PC's scope", () => {
  it("is left out with its appointment, the rest refreshes, and it comes once the person may see its branch", async () => {
    const { graph, tier } = copy;
    const branch = await otherBranch();
    const { patient, appointment } = await bookedToday(branch);
    await clinic.node
      .sql`update patients set phone = '55 3333 4444' where id = ${graph.patients.id as string}`;
    const report = await tier.refresh(clinic.source);
    expect(report.unplaced).toBe(2);
    // Kept in the file for a screen working on the copy: what it lacks, per table.
    expect(await tier.copyGaps()).toEqual({ patients: 1, appointments: 1 });
    expect(await tier.source.table("appointments").get(appointment)).toBeNull();
    expect(await tier.source.table("patients").get(graph.patients.id as string)).toMatchObject({
      phone: "55 3333 4444",
    });
    // Asked for again by id, not only when they change.
    expect((await tier.refresh(clinic.source)).unplaced).toBe(2);
    await clinic.person.admit(branch);
    expect((await tier.refresh(clinic.source)).unplaced).toBe(0);
    expect(await tier.copyGaps()).toEqual({});
    expect(await tier.source.table("patients").get(patient)).toMatchObject({ branch_id: branch });
    expect(await tier.source.table("appointments").get(appointment)).not.toBeNull();
  });

  it("is still counted as missing from the copy when the PC starts again, offline", async () => {
    const { graph, tier, files } = copy;
    await bookedToday(await otherBranch());
    await tier.refresh(clinic.source);
    await tier.close();
    const restarted = await openTier(files, { branchId: graph.branches.id as string });
    try {
      expect(await restarted.copyGaps()).toEqual({ patients: 1, appointments: 1 });
    } finally {
      await restarted.close();
    }
  });

  it("counts only what the copy still lacks, and what a refresh the cut stopped could not place", async () => {
    const { tier } = copy;
    const branch = await otherBranch();
    const { appointment } = await bookedToday(branch);
    expect((await tier.refresh(clinic.source)).unplaced).toBe(2);
    // Placed by a refresh the cut then stopped: no longer missing, whatever that refresh kept.
    await clinic.person.admit(branch);
    await expect(tier.refresh(cutAt(clinic.source, "encounters"))).rejects.toMatchObject({
      code: "unavailable",
    });
    expect(await tier.source.table("appointments").get(appointment)).not.toBeNull();
    expect(await tier.copyGaps()).toEqual({});
    // Left out by a refresh the cut then stopped: counted, and asked for again by the next one.
    const other = await bookedToday(await otherBranch());
    await expect(tier.refresh(cutAt(clinic.source, "encounters"))).rejects.toMatchObject({
      code: "unavailable",
    });
    expect(await tier.copyGaps()).toEqual({ patients: 1, appointments: 1 });
    const report = await tier.refresh(clinic.source);
    expect(report.unplaced).toBe(2);
    expect(await tier.copyGaps()).toEqual({ patients: 1, appointments: 1 });
    expect(await tier.source.table("appointments").get(other.appointment)).toBeNull();
  });

  it("counts a past appointment left out as an encounter's parent (its doctor of another branch), with the encounter", async () => {
    const { graph, tier } = copy;
    const branch = await otherBranch();
    const [doctor, past] = [randomUUID(), randomUUID()];
    const here = graph.branches.id as string;
    await clinic.node.sql.begin(async (tx) => {
      await tx`insert into profiles (id, full_name) values (${doctor}, 'Dra. Visitante')`;
      await tx`insert into user_branches (id, user_id, branch_id) values (${randomUUID()}, ${doctor}, ${branch})`;
      await tx`insert into appointments (id, branch_id, patient_id, doctor_id, starts_at, ends_at, reason, type)
        values (${past}, ${here}, ${graph.patients.id as string}, ${doctor}, now() - interval '3 days',
          now() - interval '3 days' + interval '20 minutes', 'Control', 'follow_up')`;
      await tx`insert into encounters (id, patient_id, appointment_id, branch_id, doctor_id, started_at, chief_complaint)
        values (${randomUUID()}, ${graph.patients.id as string}, ${past}, ${here}, ${graph.profiles.id as string},
          now() - interval '3 days', 'Revisión')`;
    });
    expect((await tier.refresh(clinic.source)).unplaced).toBe(2);
    expect(await tier.copyGaps()).toEqual({ appointments: 1, encounters: 1 });
    // The next refresh asks for the encounter again, and finds its appointment still lacking.
    expect((await tier.refresh(clinic.source)).unplaced).toBe(2);
    expect(await tier.copyGaps()).toEqual({ appointments: 1, encounters: 1 });
  });

  it("stops asking for such a row once its appointment leaves the scope", async () => {
    const { tier } = copy;
    const { appointment } = await bookedToday(await otherBranch());
    expect((await tier.refresh(clinic.source)).unplaced).toBe(2);
    await clinic.node.sql`update appointments set starts_at = starts_at + interval '60 days',
      ends_at = ends_at + interval '60 days' where id = ${appointment}`;
    expect((await tier.refresh(clinic.source)).unplaced).toBe(0);
    expect((await tier.refresh(clinic.source)).unplaced).toBe(0);
  });

  it("leaves out a patient's new appointment while the person's offline delete of that patient waits", async () => {
    const { graph, tier } = copy;
    const { patient, appointment } = await bookedToday(graph.branches.id as string);
    await tier.refresh(clinic.source);
    await tier.source.table("appointments").delete(appointment);
    await tier.source.table("patients").delete(patient);
    const again = await bookedToday(graph.branches.id as string, patient);
    expect((await tier.refresh(clinic.source)).unplaced).toBe(1);
    expect(await tier.source.table("appointments").get(again.appointment)).toBeNull();
    // The server keeps the patient (booked again), so the delete is a dead letter, still held here.
    expect(await tier.drain(clinic.applier)).toMatchObject({ deadLettered: 1 });
    expect((await tier.refresh(clinic.source)).unplaced).toBe(1);
  });
});
