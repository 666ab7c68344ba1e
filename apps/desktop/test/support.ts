import { randomUUID } from "node:crypto";
import { CvError } from "@centrovision/core";
import type postgres from "postgres";
import { type Demo, onDatabase, waitUntil } from "../src/demo/demo-stack.js";
import { todayInMexicoCity } from "../src/demo/seed.js";

export { waitUntil as waitFor } from "../src/demo/demo-stack.js";

export interface Reply<T = unknown> {
  status: number;
  body: T;
}

/** `invoke` over the real transport, keeping the status for the assertions. */
export async function call<T = unknown>(demo: Demo, command: string, args: unknown = {}): Promise<Reply<T>> {
  const response = await fetch(`${demo.url}/invoke/${command}`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${demo.secret}` },
    body: typeof args === "string" ? args : JSON.stringify(args),
  });
  return { status: response.status, body: (await response.json()) as T };
}

/** Reads the cloud database directly, behind the gateway's and the router's back. */
export function cloudRows<T extends object>(
  demo: Demo,
  query: (sql: postgres.Sql) => Promise<T[]>,
): Promise<T[]> {
  return onDatabase(demo.cloudDbUrl, query);
}

/** The CvError `run` rejects with (anything else is rethrown; resolving fails the test). */
export async function failure(run: () => Promise<unknown>): Promise<CvError> {
  try {
    await run();
  } catch (error) {
    if (error instanceof CvError) return error;
    throw error;
  }
  throw new Error("expected a CvError");
}

/**
 * Waits until the signed-in person holds a clinic session: the cloud hands it out in the
 * background of an online sign-in, and without one the PC never works on the clinic server.
 */
export function clinicSessionHeld(demo: Demo): Promise<void> {
  return waitUntil("the clinic session", async () => {
    const state = demo.session.current();
    return state.signedIn && state.clinicUsable;
  });
}

/** Tomorrow in the clinic's time zone (inside the offline copy's days ahead, never in the past). */
export function tomorrow(): string {
  const [y, m, d] = todayInMexicoCity().split("-").map(Number) as [number, number, number];
  return new Date(Date.UTC(y, m - 1, d + 1)).toISOString().slice(0, 10);
}

/**
 * A patient registered at the demo's second branch (Polanco), booked at 8:10 on `date` at its first
 * (Sur, this PC's) for `reason`, the receptionist no longer of Polanco: she sees the patient through
 * the appointment but not Polanco's branch row, and the PC's copy holds no row without its parents.
 * Written in the cloud; resolves once the clinic server has it too (the daemon's sync), so a refresh
 * from either finds the same. `readmit()` makes her of Polanco again.
 */
export async function bookedAcrossBranches(demo: Demo, date: string, reason: string) {
  const [sur, polanco] = demo.clinic.branches.map((branch) => branch.id) as [string, string];
  const receptionist = demo.clinic.receptionistId;
  const patient = randomUUID();
  const appointment = randomUUID();
  await cloudRows(demo, async (sql) => {
    await sql`delete from user_branches where user_id = ${receptionist} and branch_id = ${polanco}`;
    await sql`insert into patients (id, branch_id, first_name, last_name, birth_date, sex, phone)
      values (${patient}, ${polanco}, 'Inés', 'Polanco', '1958-07-21', 'female', '55 2222 3333')`;
    await sql`insert into appointments (id, branch_id, patient_id, doctor_id, starts_at, ends_at, reason, type)
      values (${appointment}, ${sur}, ${patient}, ${demo.clinic.doctorId}, ${`${date}T08:10:00-06:00`},
        ${`${date}T08:30:00-06:00`}, ${reason}, 'follow_up')`;
    return [];
  });
  await waitUntil("the clinic server's copy of both changes", async () => {
    const [here] = await onDatabase(
      demo.clinicDbUrl,
      (sql) => sql<{ booked: boolean; admitted: boolean }[]>`select
        exists (select from appointments where id = ${appointment}) as booked,
        exists (select from user_branches where user_id = ${receptionist} and branch_id = ${polanco}) as admitted`,
    );
    return here?.booked === true && here.admitted === false;
  });
  const readmit = () =>
    cloudRows(demo, async (sql) => {
      await sql`insert into user_branches (id, user_id, branch_id) values (${randomUUID()}, ${receptionist}, ${polanco})`;
      return [];
    });
  return { sur, patient, appointment, readmit };
}
