import { randomUUID } from "node:crypto";
import type { ConnectionStatus } from "@centrovision/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Demo, onDatabase, startDemo } from "../src/demo/demo-stack.js";
import { todayInMexicoCity } from "../src/demo/seed.js";
import { call, cloudRows, waitFor } from "./support.js";

// What this PC's offline copy cannot hold reaches the receptionist's screen. A patient registered
// at Polanco, booked at Sur, where the receptionist works and Polanco is not hers: she sees the
// patient through the appointment but not Polanco's branch row, and the copy holds no row without
// its parents, so offline the agenda lacks that appointment. The status says so.

let demo: Demo;
let sur: string;
let polanco: string;

beforeAll(async () => {
  demo = await startDemo({ port: 0 });
  [sur, polanco] = demo.clinic.branches.map((branch) => branch.id) as [string, string];
}, 180_000);

afterAll(() => demo?.stop());

const status = async () => (await call<ConnectionStatus>(demo, "get_connection_status")).body;

/** Tomorrow in the clinic's time zone (inside the offline copy's days ahead, never in the past). */
function tomorrow(): string {
  const [y, m, d] = todayInMexicoCity().split("-").map(Number) as [number, number, number];
  return new Date(Date.UTC(y, m - 1, d + 1)).toISOString().slice(0, 10);
}

describe("what the offline copy lacks", () => {
  it("is in the status, per table, offline too, and clears once a refresh places it", async () => {
    const receptionist = demo.clinic.receptionistId;
    const patient = randomUUID();
    const appointment = randomUUID();
    const date = tomorrow();
    await cloudRows(demo, async (sql) => {
      await sql`delete from user_branches where user_id = ${receptionist} and branch_id = ${polanco}`;
      await sql`insert into patients (id, branch_id, first_name, last_name, birth_date, sex, phone)
        values (${patient}, ${polanco}, 'Inés', 'Polanco Gaps', '1958-07-21', 'female', '55 2222 3333')`;
      await sql`insert into appointments (id, branch_id, patient_id, doctor_id, starts_at, ends_at, reason, type)
        values (${appointment}, ${sur}, ${patient}, ${demo.clinic.doctorId}, ${`${date}T08:10:00-06:00`},
          ${`${date}T08:30:00-06:00`}, 'Revisión de catarata', 'follow_up')`;
      return [];
    });
    // The clinic server has them too (the daemon's sync): a refresh from it finds the same.
    await waitFor("the clinic server's copy of both changes", async () => {
      const [here] = await onDatabase(
        demo.clinicDbUrl,
        (sql) => sql<{ booked: boolean; admitted: boolean }[]>`select
          exists (select from appointments where id = ${appointment}) as booked,
          exists (select from user_branches where user_id = ${receptionist} and branch_id = ${polanco}) as admitted`,
      );
      return here?.booked === true && here.admitted === false;
    });
    const account = demo.accounts.receptionist;
    expect((await call(demo, "sign_in", { email: account.email, password: account.password })).status).toBe(
      200,
    );
    await waitFor("the cloud", async () => (await status()).mode === "supabase");
    await waitFor("a refresh of this PC's copy", async () => (await status()).lastSyncAt !== null);
    expect((await status()).notInCopy).toEqual({ patients: 1, appointments: 1 });

    await demo.setInternet(false);
    await demo.setClinicServer(false);
    await waitFor("offline", async () => (await status()).mode === "offline");
    expect((await status()).notInCopy).toEqual({ patients: 1, appointments: 1 });
    const agenda = await call<{ id: string }[]>(demo, "get_appointments", { branch_id: sur, date });
    expect(agenda.status).toBe(200);
    expect(agenda.body.map((item) => item.id)).not.toContain(appointment);

    // Once she may see Polanco again, the next refresh places both, and the status says nothing.
    await cloudRows(demo, async (sql) => {
      await sql`insert into user_branches (id, user_id, branch_id) values (${randomUUID()}, ${receptionist}, ${polanco})`;
      return [];
    });
    await demo.setClinicServer(true);
    await demo.setInternet(true);
    await waitFor("the cloud", async () => (await status()).mode === "supabase");
    await waitFor("a refresh that places both", async () => {
      const gaps = (await status()).notInCopy;
      return gaps !== undefined && Object.keys(gaps).length === 0;
    });
    expect(await demo.offline.source.table("appointments").get(appointment)).not.toBeNull();
  }, 180_000);
});
