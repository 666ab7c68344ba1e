import type { ConnectionStatus } from "@centrovision/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Demo, startDemo } from "../src/demo/demo-stack.js";
import { bookedAcrossBranches, call, tomorrow, waitFor } from "./support.js";

// What this PC's offline copy cannot hold reaches the receptionist's screen. A patient registered
// at Polanco, booked at Sur, where the receptionist works and Polanco is not hers: offline, the
// agenda lacks that appointment, and the status says so.

let demo: Demo;

beforeAll(async () => {
  demo = await startDemo({ port: 0 });
}, 180_000);

afterAll(() => demo?.stop());

const status = async () => (await call<ConnectionStatus>(demo, "get_connection_status")).body;

describe("what the offline copy lacks", () => {
  it("is in the status, per table, offline too, and clears once a refresh places it", async () => {
    const date = tomorrow();
    const { sur, appointment, readmit } = await bookedAcrossBranches(demo, date, "Revisión de catarata");
    const account = demo.accounts.receptionist;
    expect((await call(demo, "sign_in", { email: account.email, password: account.password })).status).toBe(
      200,
    );
    await waitFor("the cloud", async () => (await status()).mode === "supabase");
    await waitFor("a refresh of this PC's copy", async () => (await status()).lastSyncAt !== null);
    expect((await status()).notInCopy).toEqual({ patients: 1, appointments: 1 });
    // Whoever asks with nobody signed in is not told about her copy.
    expect((await call(demo, "sign_out")).status).toBe(200);
    expect((await status()).notInCopy).toBeUndefined();
    expect((await call(demo, "sign_in", { email: account.email, password: account.password })).status).toBe(
      200,
    );
    await waitFor("the cloud", async () => (await status()).mode === "supabase");

    // Cut while the copy is refreshed every 2 s: a refresh the cut catches reads no row of the copy.
    await demo.setInternet(false);
    await demo.setClinicServer(false);
    await waitFor("offline", async () => (await status()).mode === "offline");
    expect((await status()).notInCopy).toEqual({ patients: 1, appointments: 1 });
    const agenda = await call<{ id: string }[]>(demo, "get_appointments", { branch_id: sur, date });
    expect(agenda.status).toBe(200);
    expect(agenda.body.map((item) => item.id)).not.toContain(appointment);

    // Once she may see Polanco again, the next refresh places both, and the status says nothing.
    await readmit();
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
