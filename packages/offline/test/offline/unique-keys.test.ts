import { randomUUID } from "node:crypto";
import { rowOf } from "@centrovision/testkit/nodes";
import type postgres from "postgres";
import { describe, expect, it } from "vitest";
import { todayClinic, useClinicServer, useTodayCopy } from "./support.js";

/*
 * The PC's copy takes rows whose unique keys moved on the server, a refresh never stops on a key
 * one of the owner's unsent edits holds here, and a swap made offline drains.
 */

const clinic = useClinicServer("offline_unique_keys");
const copy = useTodayCopy(clinic);

const documentId = () => `DOC-${randomUUID().slice(0, 8).toUpperCase()}`;

/** A new patient of `branchId`, as the front desk registers one. */
const newPatient = (branchId: string) => ({
  id: randomUUID(),
  branch_id: branchId,
  first_name: "Ana",
  last_name: "Pérez",
  birth_date: "1960-02-02",
  sex: "female" as const,
  phone: "55 1111 2222",
});

/** A patient of the copy's branch on the clinic server, with an appointment today (in the scope). */
async function patientTodayIn(
  sql: postgres.TransactionSql,
  document: string,
): Promise<{ patient: string; appointment: string }> {
  const { graph } = copy;
  const patient = randomUUID();
  const appointment = randomUUID();
  const slot = todayClinic().appointments;
  await sql`insert into patients (id, branch_id, first_name, last_name, birth_date, sex, phone, document_id)
    values (${patient}, ${graph.branches.id}, 'Ana', 'Pérez', '1960-02-02', 'female', '55 1111 2222', ${document})`;
  await sql`insert into appointments (id, branch_id, patient_id, doctor_id, starts_at, ends_at, reason, type)
    values (${appointment}, ${graph.branches.id}, ${patient}, ${graph.profiles.id}, ${slot.starts_at as string},
      ${slot.ends_at as string}, 'Control', 'follow_up')`;
  return { patient, appointment };
}

const patientToday = (document: string) => clinic.node.sql.begin((tx) => patientTodayIn(tx, document));

/**
 * Swaps two patients' document numbers on the clinic server in one statement, then refreshes the
 * copy: it takes both.
 */
async function expectSwapTaken(pair: readonly string[]): Promise<void> {
  const { tier } = copy;
  const patients = tier.source.table("patients");
  const before = await Promise.all(pair.map((id) => patients.get(id)));
  await clinic.node.sql`
    update patients p set document_id = o.document_id
    from patients o where p.id in ${clinic.node.sql(pair)} and o.id in ${clinic.node.sql(pair)} and o.id <> p.id`;
  const report = await tier.refresh(clinic.source);
  expect(report.unplaced).toBe(0);
  expect((await patients.get(pair[0] as string))?.document_id).toBe(before[1]?.document_id);
  expect((await patients.get(pair[1] as string))?.document_id).toBe(before[0]?.document_id);
}

/**
 * A visit three days ago in a room of its own, refreshed into the copy: the appointment is no longer
 * in the agenda's window, but the copy keeps it, and its room, for the patient's encounter. Then
 * (after `meanwhile`, on the PC) the server removes the room (the appointment keeps no room) and
 * gives its name to a new one.
 */
async function pastVisitInItsOwnRoom(meanwhile: (past: string) => Promise<unknown> = async () => {}) {
  const { graph, tier } = copy;
  const [old, renamed, past] = [randomUUID(), randomUUID(), randomUUID()];
  const name = `Consultorio ${old.slice(0, 4)}`;
  const branch = graph.branches.id as string;
  await clinic.node.sql.begin(async (tx) => {
    await tx`insert into rooms (id, branch_id, name, kind) values (${old}, ${branch}, ${name}, 'consultation')`;
    await tx`insert into appointments (id, branch_id, patient_id, doctor_id, room_id, starts_at, ends_at, reason, type)
      values (${past}, ${branch}, ${graph.patients.id as string}, ${graph.profiles.id as string}, ${old},
        now() - interval '3 days', now() - interval '3 days' + interval '20 minutes', 'Control', 'follow_up')`;
    await tx`insert into encounters (id, patient_id, appointment_id, branch_id, doctor_id, started_at, chief_complaint)
      values (${randomUUID()}, ${graph.patients.id as string}, ${past}, ${branch}, ${graph.profiles.id as string},
        now() - interval '3 days', 'Revisión')`;
  });
  await tier.refresh(clinic.source);
  expect(await tier.source.table("rooms").get(old)).not.toBeNull();
  await meanwhile(past);
  await clinic.node.sql.begin(async (tx) => {
    await tx`delete from rooms where id = ${old}`;
    await tx`insert into rooms (id, branch_id, name, kind) values (${renamed}, ${branch}, ${name}, 'consultation')`;
  });
  return { old, renamed, past, name };
}

describe("unique keys in the PC's copy", () => {
  it("takes two patients' document numbers swapped on the server", async () => {
    const { graph, tier } = copy;
    const other = await patientToday(documentId());
    await tier.refresh(clinic.source);
    await expectSwapTaken([graph.patients.id as string, other.patient]);
  });

  it("takes a swap between rows the copy writes in different batches", async () => {
    const { graph, tier } = copy;
    // 600 patients with an appointment each today, 5 seconds apart from one to the next: the
    // copy writes them in batches of 500, in the order of their appointments.
    const ids = await clinic.node.sql<{ id: string }[]>`
      with p as (
        insert into patients (id, branch_id, first_name, last_name, birth_date, sex, phone, document_id)
        select gen_random_uuid(), ${graph.branches.id as string}, 'Paciente ' || n, 'Lote', '1970-01-01', 'female',
          '55 1111 2222', 'LOTE-' || n || '-' || ${randomUUID().slice(0, 8).toUpperCase()}
        from generate_series(1, 600) n
        returning id, document_id
      ), a as (
        insert into appointments (id, branch_id, patient_id, doctor_id, starts_at, ends_at, reason, type)
        select gen_random_uuid(), ${graph.branches.id as string}, p.id, ${graph.profiles.id as string},
          now() + interval '2 hours' + row_number() over (order by p.document_id) * interval '5 seconds',
          now() + interval '3 hours', 'Control', 'follow_up'
        from p
        returning patient_id, starts_at
      )
      select patient_id as id from a order by starts_at`;
    await tier.refresh(clinic.source);
    await expectSwapTaken([ids[0]?.id, ids[ids.length - 1]?.id] as string[]);
  });

  it("takes a new patient with the number a patient of the copy gave up, in the refresh that brings it", async () => {
    const { graph, tier } = copy;
    const given = graph.patients.document_id as string;
    // The new patient comes as a parent of its appointment, before the step that reads the copy's
    // patients again: the copy's patient still holds the number then, and is read again for it.
    const renumbered = documentId();
    const { patient, appointment } = await clinic.node.sql.begin(async (tx) => {
      await tx`update patients set document_id = ${renumbered} where id = ${graph.patients.id as string}`;
      return patientTodayIn(tx, given);
    });
    const report = await tier.refresh(clinic.source);
    expect(report.unplaced).toBe(0);
    expect(await tier.source.table("patients").get(graph.patients.id as string)).toMatchObject({
      document_id: renumbered,
    });
    expect(await tier.source.table("patients").get(patient)).toMatchObject({ document_id: given });
    expect(await tier.source.table("appointments").get(appointment)).not.toBeNull();
  });

  it("leaves a new patient out when the copy's patient holding its number moved to a branch the person does not see", async () => {
    const { graph, tier } = copy;
    const given = graph.patients.document_id as string;
    const branch = randomUUID();
    const { patient } = await clinic.node.sql.begin(async (tx) => {
      await tx`insert into branches (id, code, name, address)
        values (${branch}, ${`POL-${branch.slice(0, 4).toUpperCase()}`}, 'Polanco', 'Av. Presidente Masaryk 8')`;
      await tx`update patients set document_id = ${documentId()}, branch_id = ${branch}
        where id = ${graph.patients.id as string}`;
      return patientTodayIn(tx, given);
    });
    // The copy's patient, read again for the number, needs a branch row the copy cannot hold.
    const report = await tier.refresh(clinic.source);
    expect(report.unplaced).toBeGreaterThanOrEqual(2);
    expect(await tier.source.table("patients").get(patient)).toBeNull();
    expect(await tier.source.table("patients").get(graph.patients.id as string)).toMatchObject({
      document_id: given,
    });
  });

  it("takes a room named as one the server deleted, which the copy kept for a past appointment", async () => {
    const { tier } = copy;
    const visit = await pastVisitInItsOwnRoom();
    const report = await tier.refresh(clinic.source);
    expect(report.unplaced).toBe(0);
    expect(await tier.source.table("rooms").get(visit.renamed)).toMatchObject({ name: visit.name });
    expect(await tier.source.table("rooms").get(visit.old)).toBeNull();
    expect(await tier.source.table("appointments").get(visit.past)).toMatchObject({ room_id: null });
  });

  it("keeps that room while the person's unsent edit of the past appointment references it", async () => {
    const { tier } = copy;
    const visit = await pastVisitInItsOwnRoom(async (past) => {
      await tier.source.table("appointments").update(past, { reason: "Control, sin dilatar" });
    });
    const report = await tier.refresh(clinic.source);
    expect(report.unplaced).toBe(1);
    expect(await tier.source.table("appointments").get(visit.past)).toMatchObject({
      room_id: visit.old,
      reason: "Control, sin dilatar",
    });
    expect(await tier.source.table("rooms").get(visit.renamed)).toBeNull();
  });

  it("drains a swap of two patients' document numbers made offline, which no one-row-at-a-time order takes", async () => {
    const { graph, tier } = copy;
    const patients = tier.source.table("patients");
    const other = await patients.insert({
      ...newPatient(graph.branches.id as string),
      document_id: documentId(),
    });
    expect(await tier.drain(clinic.applier)).toMatchObject({ remaining: 0 });
    const first = graph.patients.document_id as string;
    // As a receptionist corrects them: one moved aside, the other moved over, the first put back.
    // The outbox sends each row's last version only.
    await patients.update(graph.patients.id as string, { document_id: "SWAP-ASIDE" });
    await patients.update(other.id, { document_id: first });
    await patients.update(graph.patients.id as string, { document_id: other.document_id });
    expect(await tier.drain(clinic.applier)).toMatchObject({ sent: 2, deadLettered: 0, remaining: 0 });
    expect(await rowOf(clinic.node.sql, "patients", other.id)).toMatchObject({ document_id: first });
    expect(await rowOf(clinic.node.sql, "patients", graph.patients.id as string)).toMatchObject({
      document_id: other.document_id,
    });
  });

  it("leaves out a server patient whose number the owner's unsent new patient holds, until it no longer does", async () => {
    const { graph, tier } = copy;
    const document = documentId();
    const mine = await tier.source
      .table("patients")
      .insert({ ...newPatient(graph.branches.id as string), document_id: document });
    const theirs = await patientToday(document);
    // Before, the refresh failed on the key, this one and every one after it.
    const report = await tier.refresh(clinic.source);
    expect(report.unplaced).toBe(2);
    expect(await tier.source.table("patients").get(theirs.patient)).toBeNull();
    expect(await tier.source.table("appointments").get(theirs.appointment)).toBeNull();
    expect(await tier.source.table("patients").get(mine.id)).toMatchObject({ document_id: document });
    // The receptionist sees the clash and corrects their own record: the next refresh takes the rest.
    await tier.source.table("patients").update(mine.id, { document_id: documentId() });
    const next = await tier.refresh(clinic.source);
    expect(next.unplaced).toBe(0);
    expect(await tier.source.table("patients").get(theirs.patient)).toMatchObject({ document_id: document });
    expect(await tier.source.table("appointments").get(theirs.appointment)).not.toBeNull();
    expect(await tier.pendingCount()).toBe(1);
  });
});
