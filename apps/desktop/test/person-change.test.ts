import type { ConnectionStatus } from "@centrovision/core";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type Demo, startDemo } from "../src/demo/demo-stack.js";
import { call, clinicSessionHeld, cloudRows, tomorrow, waitFor } from "./support.js";

/*
 * A change of person on one PC, on the whole desktop stack: the router, and its memory of this
 * PC's recent writes, outlive a sign-out, and a carry or a lift runs with the session of whoever
 * is signed in then. The receptionist books on the clinic server during an internet outage, the
 * clinic server stops before its sync could send the booking up, the receptionist signs out and the
 * doctor signs in online: at the failback to the cloud, the booking must not be lifted there as the
 * doctor's (forgetWrites at the doctor's sign-in).
 */

let demo: Demo;
let branchId: string;
let patientId: string;

beforeAll(async () => {
  demo = await startDemo({ port: 0 });
  branchId = demo.clinic.branches[0]?.id ?? "";
  patientId = demo.clinic.rows.patients?.find((p) => p.branch_id === branchId)?.id ?? "";
}, 240_000);

afterAll(() => demo?.stop());

const status = async () => (await call<ConnectionStatus>(demo, "get_connection_status")).body;
const signInAs = (who: "receptionist" | "doctor") =>
  call<{ method?: string }>(demo, "sign_in", {
    email: demo.accounts[who].email,
    password: demo.accounts[who].password,
  });

it("a booking the clinic server took for one person is never written to the cloud as the next person's", async () => {
  expect((await signInAs("receptionist")).body).toMatchObject({ method: "online" });
  await clinicSessionHeld(demo);
  await waitFor("the cloud", async () => (await status()).mode === "supabase", 30_000);

  await demo.setInternet(false);
  await waitFor("the clinic server", async () => (await status()).mode === "local", 30_000);
  const booked = await call<{ id: string }>(demo, "create_appointment", {
    branch_id: branchId,
    patient_id: patientId,
    starts_at: `${tomorrow()}T18:00:00-06:00`,
    reason: "Control (reseña: cambio de persona)",
    type: "follow_up",
  });
  expect(booked.status).toBe(200);
  // The clinic server stops before its sync could send the booking up (no internet).
  await demo.setClinicServer(false);
  await waitFor("this PC", async () => (await status()).mode === "offline", 30_000);

  expect((await call(demo, "sign_out", { leave_unsent: true })).status).toBe(200);
  await demo.setInternet(true);
  expect((await signInAs("doctor")).body).toMatchObject({ method: "online" });
  await waitFor("the cloud again", async () => (await status()).mode === "supabase", 60_000);
  // Time for a failback lift to land.
  await new Promise((resolve) => setTimeout(resolve, 3_000));

  const onCloud = await cloudRows(
    demo,
    (sql) => sql`select created_by from appointments where id = ${booked.body.id}`,
  );
  // Absent (the clinic server's sync brings it later, as the receptionist's) or the receptionist's.
  for (const row of onCloud) expect(row.created_by).toBe(demo.clinic.receptionistId);

  // Once the clinic server is back, its sync sends the booking with its real author.
  await demo.setClinicServer(true);
  await waitFor(
    "the booking on the cloud",
    async () =>
      (await cloudRows(demo, (sql) => sql`select 1 from appointments where id = ${booked.body.id}`))
        .length === 1,
    90_000,
  );
  const [synced] = await cloudRows(
    demo,
    (sql) => sql`select created_by from appointments where id = ${booked.body.id}`,
  );
  expect(synced?.created_by).toBe(demo.clinic.receptionistId);
}, 240_000);

it("an offline booking left in the outbox by one person waits for them: never sent as the next person's", async () => {
  // Where the test before left the PC: the doctor signed in online, every server up.
  await call(demo, "sign_out");
  expect((await signInAs("receptionist")).body).toMatchObject({ method: "online" });
  await waitFor("the cloud", async () => (await status()).mode === "supabase", 60_000);
  // The copy was the doctor's: it is fetched again for the receptionist before the cut.
  await waitFor(
    "the receptionist's offline copy",
    async () => (await demo.offline.source.table("patients").get(patientId)) !== null,
    60_000,
  );
  await Promise.all([demo.setInternet(false), demo.setClinicServer(false)]);
  await waitFor("this PC", async () => (await status()).mode === "offline", 30_000);
  const booked = await call<{ id: string }>(demo, "create_appointment", {
    branch_id: branchId,
    patient_id: patientId,
    starts_at: `${tomorrow()}T19:00:00-06:00`,
    reason: "Control (bandeja de salida, cambio de persona)",
    type: "follow_up",
  });
  expect(booked.status).toBe(200);
  await waitFor("the outbox", async () => (await status()).pendingChanges === 1);

  expect((await call(demo, "sign_out", { leave_unsent: true })).status).toBe(200);
  await demo.setInternet(true);
  expect((await signInAs("doctor")).body).toMatchObject({ method: "online" });
  await waitFor("the cloud", async () => (await status()).mode === "supabase", 60_000);
  // Several of the outbox's own drains (every 2 s): none sends the receptionist's booking.
  await new Promise((resolve) => setTimeout(resolve, 5_000));
  const onCloud = (sql: Parameters<Parameters<typeof cloudRows>[1]>[0]) =>
    sql`select created_by from appointments where id = ${booked.body.id}`;
  expect(await cloudRows(demo, onCloud)).toEqual([]);
  expect((await status()).pendingChanges).toBe(0);
  // The doctor is told whose change waits here (her colleague's name, from the doctor's own copy).
  const othersUnsent = async () =>
    (await call<{ othersUnsent?: unknown }>(demo, "get_session")).body.othersUnsent;
  await waitFor("the receptionist named", async () => {
    const waiting = (await othersUnsent()) as { name: string | null }[];
    return waiting[0]?.name !== null && waiting[0]?.name !== undefined;
  });
  expect(await othersUnsent()).toEqual([{ name: demo.accounts.receptionist.name, changes: 1, refused: 0 }]);

  // Its author signs in again: it goes, as hers.
  await call(demo, "sign_out");
  expect((await signInAs("receptionist")).body).toMatchObject({ method: "online" });
  await waitFor(
    "the booking on the cloud",
    async () => (await cloudRows(demo, onCloud)).length === 1,
    60_000,
  );
  expect((await cloudRows(demo, onCloud))[0]?.created_by).toBe(demo.clinic.receptionistId);
  expect(await othersUnsent()).toEqual([]);
  await demo.setClinicServer(true);
}, 240_000);
