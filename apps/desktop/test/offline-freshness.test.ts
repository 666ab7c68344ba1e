import type { ConnectionStatus } from "@centrovision/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Demo, onDatabase, startDemo } from "../src/demo/demo-stack.js";
import { todayInMexicoCity } from "../src/demo/seed.js";
import { call, clinicSessionHeld, cloudRows, tomorrow, waitFor } from "./support.js";

// Issue 15, item 2: at the switch to offline the PC's copy holds what the servers acknowledged
// to it up to the last answer, so the offline agenda never misses an appointment this PC booked
// seconds before (a receptionist would book the slot twice), nor one another PC booked on the
// clinic server. And a person whose clinic session has not come yet when the internet drops works
// on this PC, never refused on the clinic server.

let demo: Demo;
let branchId: string;

beforeAll(async () => {
  // No periodic refresh to speak of: what keeps the copy fresh here is what these tests are about.
  demo = await startDemo({ port: 0, cacheRefreshMs: 600_000 });
  branchId = demo.clinic.branches[0]?.id ?? "";
  const account = demo.accounts.receptionist;
  const signedIn = await call(demo, "sign_in", { email: account.email, password: account.password });
  expect(signedIn.status).toBe(200);
}, 180_000);

afterAll(() => demo?.stop());

const status = async () => (await call<ConnectionStatus>(demo, "get_connection_status")).body;

describe("the offline copy at the switch", () => {
  it("holds an appointment booked on the clinic server when the server stops right after answering", async () => {
    await waitFor("the cloud", async () => (await status()).mode === "supabase");
    await clinicSessionHeld(demo);
    // This PC's own sync state, not a constant: its copy is refreshed from a server.
    await waitFor("a refresh of this PC's copy", async () => (await status()).lastSyncAt !== null);
    await demo.setInternet(false);
    await waitFor("the clinic server", async () => (await status()).mode === "local");

    const patient = await call<{ id: string }>(demo, "create_patient", {
      branch_id: branchId,
      first_name: "Rosa",
      last_name: "Freshness",
      birth_date: "1971-03-09",
      sex: "female",
      phone: "55 1234 5678",
    });
    expect(patient.status, JSON.stringify(patient.body)).toBe(200);
    const date = tomorrow();
    const booked = await call<{ id: string }>(demo, "create_appointment", {
      branch_id: branchId,
      patient_id: patient.body.id,
      starts_at: `${date}T10:00:00-06:00`,
      duration_minutes: 30,
      reason: "Revisión de presión ocular",
      type: "follow_up",
    });
    expect(booked.status, JSON.stringify(booked.body)).toBe(200);
    // Acknowledged by the clinic server: it stops at once (the demo really stops its PostgreSQL).
    const stopping = demo.setClinicServer(false);
    await waitFor("offline", async () => (await status()).mode === "offline");
    await stopping;

    const agenda = await call<{ id: string; patient_id: string }[]>(demo, "get_appointments", {
      branch_id: branchId,
      date,
    });
    expect(agenda.status, JSON.stringify(agenda.body)).toBe(200);
    expect(agenda.body.map((item) => item.id)).toContain(booked.body.id);
    // The patient registered on the clinic server came along (the appointment's parent).
    const found = await call<{ id: string }[]>(demo, "search_patients", { query: "Rosa Freshness" });
    expect(found.body.map((p) => p.id)).toEqual([patient.body.id]);
    // Nothing of it is pending on this PC: the clinic server has both rows already.
    expect((await status()).pendingChanges).toBe(0);
  }, 120_000);

  it("holds what another PC booked on the clinic server, which it follows without waiting for the periodic refresh", async () => {
    await clinicSessionHeld(demo);
    await Promise.all([demo.setInternet(false), demo.setClinicServer(true)]);
    await waitFor("the clinic server", async () => (await status()).mode === "local");
    const date = tomorrow();
    // Another PC at the front desk books on the clinic server.
    const booked = await onDatabase(demo.clinicDbUrl, async (sql) => {
      const [patient] = await sql<{ id: string }[]>`
        select id from patients where branch_id = ${branchId} order by id limit 1`;
      const [row] = await sql<{ id: string }[]>`
        insert into appointments (id, branch_id, patient_id, starts_at, ends_at, reason, type)
        values (gen_random_uuid(), ${branchId}, ${patient?.id ?? null}, ${`${date}T12:00:00-06:00`},
          ${`${date}T12:30:00-06:00`}, 'Cita de otra recepción', 'follow_up')
        returning id`;
      return row?.id ?? "";
    });
    await waitFor(
      "the other PC's booking in this PC's copy",
      async () => (await demo.offline.source.table("appointments").get(booked)) !== null,
    );
    await demo.setClinicServer(false);
    await waitFor("offline", async () => (await status()).mode === "offline");
    const agenda = await call<{ id: string }[]>(demo, "get_appointments", { branch_id: branchId, date });
    expect(agenda.body.map((item) => item.id)).toContain(booked);
  }, 120_000);

  it("a booking made offline that clashes, when it reaches the cloud, with one made there meanwhile is kept and listed until settled", async () => {
    // Offline: internet and clinic server down (as the test before leaves them).
    await Promise.all([demo.setInternet(false), demo.setClinicServer(false)]);
    await waitFor("offline", async () => (await status()).mode === "offline");
    const date = tomorrow();
    const staff = await call<{ doctors: { id: string }[] }>(demo, "list_staff", { branch_id: branchId });
    const doctorId = staff.body.doctors[0]?.id ?? "";
    const today = await call<{ patient_id: string }[]>(demo, "get_appointments", {
      branch_id: branchId,
      date: todayInMexicoCity(),
    });
    const patientId = today.body[0]?.patient_id ?? "";
    const booked = await call<{ id: string }>(demo, "create_appointment", {
      branch_id: branchId,
      patient_id: patientId,
      doctor_id: doctorId,
      starts_at: `${date}T20:40:00-06:00`,
      duration_minutes: 30,
      reason: "Revisión agendada sin conexión",
      type: "follow_up",
    });
    expect(booked.status, JSON.stringify(booked.body)).toBe(200);
    // Meanwhile the same doctor is booked in the cloud (online booking), for another patient.
    const [existing] = await cloudRows<{ id: string }>(
      demo,
      (sql) => sql`
        insert into appointments (id, branch_id, patient_id, doctor_id, starts_at, ends_at, reason, type)
        select gen_random_uuid(), ${branchId}, p.id, ${doctorId}, ${`${date}T20:50:00-06:00`},
          ${`${date}T21:20:00-06:00`}, 'Reservada en línea', 'follow_up'
        from patients p where p.branch_id = ${branchId} and p.id <> ${patientId} order by p.id limit 1
        returning id`,
    );
    // The internet comes back first: the outbox drains to the cloud, which finds the clash.
    await demo.setInternet(true);
    type Listed = {
      booking_id: string;
      other_id: string;
      shared: string[];
      booked: { reason: string } | null;
    };
    let listed: Listed[] = [];
    await waitFor("the double booking on this PC's list", async () => {
      listed = (await call<Listed[]>(demo, "list_double_bookings")).body;
      return listed.length > 0;
    });
    expect(listed).toEqual([
      expect.objectContaining({
        booking_id: booked.body.id,
        other_id: existing?.id,
        shared: ["doctor_id"],
        booked: expect.objectContaining({ reason: "Revisión agendada sin conexión" }),
      }),
    ]);
    const statuses = async () =>
      cloudRows<{ id: string; status: string }>(
        demo,
        (sql) => sql`select id, status::text from appointments
          where id in ${sql([booked.body.id, existing?.id ?? ""])} order by reason desc`,
      );
    // Both are in the cloud's agenda until the person decides.
    expect((await statuses()).map((a) => a.status)).toEqual(["scheduled", "scheduled"]);
    // On the cloud (the drain done), the person cancels the one made there.
    await waitFor("the cloud", async () => (await status()).mode === "supabase");
    const settled = await call(demo, "settle_double_booking", {
      booking_id: booked.body.id,
      other_id: existing?.id,
      choice: "cancel_existing",
    });
    expect(settled.status, JSON.stringify(settled.body)).toBe(200);
    expect(await statuses()).toEqual([
      { id: booked.body.id, status: "scheduled" },
      { id: existing?.id, status: "cancelled" },
    ]);
    expect((await call<Listed[]>(demo, "list_double_bookings")).body).toEqual([]);
    const again = await call<{ message: string }>(demo, "settle_double_booking", {
      booking_id: booked.body.id,
      other_id: existing?.id,
      choice: "keep_both",
    });
    expect(again.status).toBe(404);
    await demo.setClinicServer(true);
  }, 120_000);

  it("a person signed in just before the internet drops, without a clinic session yet, works on this PC", async () => {
    await Promise.all([demo.setInternet(true), demo.setClinicServer(true)]);
    await waitFor("the cloud again", async () => (await status()).mode === "supabase");
    const account = demo.accounts.doctor;
    await call(demo, "sign_out");
    // The cloud cannot hand out a clinic session (as when the internet drops first): it no
    // longer knows the clinic's key until the daemon registers it again.
    const keys = await cloudRows(demo, (sql) => sql`delete from cv_auth.clinic_keys returning *`);
    try {
      const signedIn = await call(demo, "sign_in", { email: account.email, password: account.password });
      expect(signedIn.status).toBe(200);
      await demo.setInternet(false);
    } finally {
      await cloudRows(demo, (sql) => sql`insert into cv_auth.clinic_keys ${sql(keys)} returning key_id`);
    }
    expect(demo.session.current()).toMatchObject({ signedIn: true, clinicUsable: false });
    await waitFor("the clinic server seen up", async () => (await status()).tiers.clinic.health === "up");
    await waitFor("this PC's copy", async () => (await status()).mode === "offline");
    expect(await status()).toMatchObject({ pinned: "device", tiers: { clinic: { health: "up" } } });
    // Served here, never sent to the clinic server as the bare PC login (refused there).
    const agenda = await call(demo, "get_appointments", { branch_id: branchId, date: todayInMexicoCity() });
    expect(agenda.status, JSON.stringify(agenda.body)).toBe(200);
    const session = await call<{ needsClinicSignIn: boolean }>(demo, "get_session");
    expect(session.body.needsClinicSignIn).toBe(true);
    // A write here shows in the very next status poll.
    const before = (await status()).pendingChanges;
    const patient = await call<{ id: string }>(demo, "create_patient", {
      branch_id: branchId,
      first_name: "Rosa",
      last_name: "Pendiente",
      birth_date: "1980-05-20",
      sex: "female",
      phone: "55 8765 4321",
    });
    expect(patient.status, JSON.stringify(patient.body)).toBe(200);
    expect((await status()).pendingChanges).toBe(before + 1);
  }, 120_000);
});
