import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { todayClinic, useClinicServer, useTodayCopy } from "./support.js";

/*
 * A patient registered at another branch, with an appointment at the PC's: the person sees the
 * patient (through the appointment) but not that branch's row, and the copy holds no row without
 * its parents. Before, that patient failed the PC's refresh, and every one after it.
 */

const clinic = useClinicServer("offline_other_branch");
const copy = useTodayCopy(clinic);

describe("a patient of another branch in the PC's scope", () => {
  it("is left out with its appointment, the rest refreshes, and it comes once the person may see its branch", async () => {
    const { graph, tier } = copy;
    const branch = randomUUID();
    const patient = randomUUID();
    const appointment = randomUUID();
    const slot = todayClinic().appointments;
    await clinic.node.sql.begin(async (tx) => {
      await tx`insert into branches (id, code, name, address)
        values (${branch}, ${`POL-${branch.slice(0, 4).toUpperCase()}`}, 'Polanco', 'Av. Presidente Masaryk 8')`;
      await tx`insert into patients (id, branch_id, first_name, last_name, birth_date, sex, phone)
        values (${patient}, ${branch}, 'Ana', 'Pérez', '1960-02-02', 'female', '55 1111 2222')`;
      await tx`insert into appointments (id, branch_id, patient_id, doctor_id, starts_at, ends_at, reason, type)
        values (${appointment}, ${graph.branches.id as string}, ${patient}, ${graph.profiles.id as string},
          ${slot.starts_at as string}, ${slot.ends_at as string}, 'Control', 'follow_up')`;
      await tx`update patients set phone = '55 3333 4444' where id = ${graph.patients.id as string}`;
    });
    const report = await tier.refresh(clinic.source);
    expect(report.unplaced).toBe(2);
    expect(await tier.source.table("appointments").get(appointment)).toBeNull();
    expect(await tier.source.table("patients").get(graph.patients.id as string)).toMatchObject({
      phone: "55 3333 4444",
    });
    // Asked for again by id, not only when they change.
    expect((await tier.refresh(clinic.source)).unplaced).toBe(2);
    await clinic.person.admit(branch);
    expect((await tier.refresh(clinic.source)).unplaced).toBe(0);
    expect(await tier.source.table("patients").get(patient)).toMatchObject({ branch_id: branch });
    expect(await tier.source.table("appointments").get(appointment)).not.toBeNull();
  });
});
