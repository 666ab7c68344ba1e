import { randomUUID } from "node:crypto";
import { SYNCED_TABLES } from "@centrovision/core";
import { pick, seededRandom, testSeeds } from "@centrovision/testkit";
import type postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { runCli } from "./support/cli.js";
import { createTestClinic, type TestClinic } from "./support/clinic.js";

// Two clinics on one cloud: Norte holds branch N, Sur holds branch S; branch F has no clinic
// server of its own here. Each clinic server must hold exactly its scope (sql/0005, "Scope"), with
// every row equal to the cloud's, while rows move in and out of it. Each test runs the daemon's
// `once` several times (about 1.5 s each): hence the longer timeout.

let norte: TestClinic;
let sur: TestClinic;
let cloud: postgres.Sql;
const id = () => randomUUID();
const [N, S, F] = [id(), id(), id()];
const branchesOf = new Map<TestClinic, string>();
const cli = (clinic: TestClinic, ...args: string[]) => runCli(["--config", clinic.configPath, ...args]);

const staff = { norte: id(), sur: id(), both: id(), farDoctor: id() };
const patients = { norte: id(), sur: id(), far: id(), farSeenAtNorte: id() };
const visit = { farAtNorte: id(), norteAtNorte: id(), encounter: id(), exam: id(), diagnosis: id() };

/**
 * A pull takes only the entries of transactions older than every transaction still open on the
 * server (cv_sync.horizon, 0006), and the test files share one PostgreSQL: another file's open
 * transaction (a clinic database being migrated) holds a `once` here back, and a fixed number of
 * cycles would not converge. So each cycle first waits until every entry logged so far, on the
 * cloud and both clinics, is below that horizon.
 */
async function pastHorizon(): Promise<void> {
  const databases = [cloud, norte.sql, sur.sql];
  await vi.waitFor(
    async () => {
      for (const sql of databases) {
        const [row] = await sql<{ behind: boolean }[]>`
          select coalesce(max(txid::text::bigint), 0) >= cv_sync.horizon() as behind from cv_sync.change_log`;
        expect(row?.behind, "a transaction older than the last logged change is still open").toBe(false);
      }
    },
    { timeout: 30_000, interval: 50 },
  );
}

async function once(clinic: TestClinic): Promise<string> {
  await pastHorizon();
  const result = await cli(clinic, "once");
  expect(result.code, result.stderr + result.stdout).toBe(0);
  return result.stdout;
}

async function syncAll(): Promise<void> {
  for (let round = 0; round < 2; round += 1) {
    await once(norte);
    await once(sur);
  }
}

const rows = async (sql: postgres.Sql, table: string, ids?: readonly string[]) =>
  new Map(
    (
      await sql<{ id: string; row: string }[]>`
        select t.id, to_jsonb(t)::text as row from ${sql(table)} t
        where ${ids === undefined} or t.id = any(${ids ?? []}::uuid[])`
    ).map((r) => [r.id, r.row] as const),
  );

/** Every table on `clinic` holds exactly the cloud's rows of its branch's scope, equal to the cloud's. */
async function expectHoldsItsScope(clinic: TestClinic): Promise<void> {
  const branch = branchesOf.get(clinic) as string;
  for (const table of SYNCED_TABLES) {
    const inScope = (
      await cloud<{ id: string }[]>`
        select s.row_id as id from cv_sync.scopes s
        where s.table_name = ${table} and s.scope && array[${branch}, '00000000-0000-0000-0000-000000000000']::uuid[]`
    ).map((r) => r.id);
    // Other tests add branches to the shared cloud at any time: only ours are compared.
    const ours = table === "branches" ? [N, S, F] : undefined;
    const expected = await rows(cloud, table, ours ?? inScope);
    const held = await rows(clinic.sql, table, ours);
    expect([...held.keys()].sort(), table).toEqual([...expected.keys()].sort());
    for (const [rowId, row] of held) expect(row, `${table} ${rowId}`).toBe(expected.get(rowId));
  }
}

const has = async (clinic: TestClinic, table: string, rowId: string) =>
  (await clinic.sql`select 1 from ${clinic.sql(table)} where id = ${rowId}`).length === 1;

beforeAll(async () => {
  norte = await createTestClinic("all");
  cloud = norte.cloudSql;
  const tag = id().slice(0, 6).toUpperCase();
  await cloud.begin(async (sql) => {
    for (const [branch, code] of [
      [N, "N"],
      [S, "S"],
      [F, "F"],
    ] as const) {
      await sql`insert into branches (id, code, name, address)
        values (${branch}, ${`${code}-${tag}`}, ${`Sucursal ${code} ${tag}`}, 'Av. Reforma 1')`;
      await sql`insert into rooms (id, branch_id, name, kind) values (${id()}, ${branch}, 'Consultorio 1', 'consultation')`;
    }
    for (const [person, memberOf] of [
      [staff.norte, [N]],
      [staff.sur, [S]],
      [staff.both, [N, S]],
      [staff.farDoctor, [F]],
    ] as const) {
      await sql`insert into profiles (id, full_name) values (${person}, 'Dra. Elena Ruiz')`;
      await sql`insert into user_roles (id, user_id, role) values (${id()}, ${person}, 'doctor')`;
      for (const branch of memberOf) {
        await sql`insert into user_branches (id, user_id, branch_id) values (${id()}, ${person}, ${branch})`;
      }
    }
    for (const [patient, home] of [
      [patients.norte, N],
      [patients.sur, S],
      [patients.far, F],
      [patients.farSeenAtNorte, F],
    ] as const) {
      await sql`insert into patients (id, branch_id, first_name, last_name, birth_date, sex, phone)
        values (${patient}, ${home}, 'María José', 'Peña', '1962-07-14', 'female', '33 3615 0000')`;
    }
    const appointment = (rowId: string, branch: string, patient: string, doctor: string) => sql`
      insert into appointments (id, branch_id, patient_id, doctor_id, starts_at, ends_at, reason, type)
      values (${rowId}, ${branch}, ${patient}, ${doctor}, '2026-12-07T10:00:00-06:00', '2026-12-07T10:30:00-06:00',
        'Revisión', 'follow_up')`;
    await appointment(visit.farAtNorte, N, patients.farSeenAtNorte, staff.farDoctor);
    await appointment(visit.norteAtNorte, N, patients.norte, staff.norte);
    await sql`insert into encounters (id, patient_id, appointment_id, branch_id, doctor_id, started_at, chief_complaint)
      values (${visit.encounter}, ${patients.norte}, ${visit.norteAtNorte}, ${N}, ${staff.norte},
        '2026-12-07T10:03:00-06:00', 'Visión borrosa')`;
    await sql`insert into exam_eye (id, encounter_id, eye, iop_mmhg) values (${visit.exam}, ${visit.encounter}, 'OD', 18)`;
    await sql`insert into diagnoses (id, encounter_id, patient_id, icd10_code, description, diagnosed_at)
      values (${visit.diagnosis}, ${visit.encounter}, ${patients.norte}, 'H40.1', 'Glaucoma primario de ángulo abierto', now())`;
  });
  await norte.close();
  norte = await createTestClinic([N]);
  sur = await createTestClinic([S]);
  cloud = norte.cloudSql;
  branchesOf.set(norte, N).set(sur, S);
  for (const clinic of [norte, sur]) expect((await cli(clinic, "init")).code).toBe(0);
  await syncAll();
});

afterAll(async () => {
  await norte?.close();
  await sur?.close();
});

describe("two clinics on one cloud, each holding its scope", { timeout: 90_000 }, () => {
  it("copies each clinic its branch's rows and what its staff need, and nothing else", async () => {
    await expectHoldsItsScope(norte);
    await expectHoldsItsScope(sur);
    // Seen at Norte: the far patient with an appointment there, and that appointment's doctor
    // (not a colleague: no roles of theirs); never the far branch's own patient.
    expect(await has(norte, "patients", patients.farSeenAtNorte)).toBe(true);
    expect(await has(norte, "profiles", staff.farDoctor)).toBe(true);
    expect(await norte.sql`select 1 from user_roles where user_id = ${staff.farDoctor}`).toHaveLength(0);
    expect(await has(norte, "patients", patients.far)).toBe(false);
    expect(await has(norte, "patients", patients.sur)).toBe(false);
    expect(await has(sur, "patients", patients.norte)).toBe(false);
    expect(await has(sur, "profiles", staff.both)).toBe(true);
    expect(await has(sur, "encounters", visit.encounter)).toBe(false);
  });

  it("brings rows into a clinic and evicts them as their links move, deleting nothing", async () => {
    // The far patient's only visit at Norte goes: the patient and that doctor leave Norte.
    await cloud`delete from appointments where id = ${visit.farAtNorte}`;
    // Sur's patient gets an appointment at Norte: they join Norte.
    const surAtNorte = id();
    await cloud`insert into appointments (id, branch_id, patient_id, doctor_id, starts_at, ends_at, reason, type)
      values (${surAtNorte}, ${N}, ${patients.sur}, ${staff.both}, '2026-12-08T09:00:00-06:00',
        '2026-12-08T09:30:00-06:00', 'Primera vez', 'first_visit')`;
    await syncAll();
    await expectHoldsItsScope(norte);
    await expectHoldsItsScope(sur);
    expect(await has(norte, "patients", patients.farSeenAtNorte)).toBe(false);
    expect(await has(norte, "profiles", staff.farDoctor)).toBe(false);
    expect(await has(norte, "patients", patients.sur)).toBe(true);
    expect(await cloud`select 1 from patients where id = ${patients.farSeenAtNorte}`).toHaveLength(1);
    // An eviction is no change: nothing of it comes back to the cloud or goes into Norte's trail.
    expect(
      await norte.sql`select 1 from cv_sync.change_log where row_id = ${patients.farSeenAtNorte} and received_from is null`,
    ).toHaveLength(0);

    // The appointment moves to Sur, with its patient's record; Norte keeps the patient (home).
    await cloud`update appointments set branch_id = ${S}, doctor_id = ${staff.sur} where id = ${surAtNorte}`;
    await syncAll();
    await expectHoldsItsScope(norte);
    await expectHoldsItsScope(sur);
    expect(await has(norte, "appointments", surAtNorte)).toBe(false);
    expect(await has(sur, "appointments", surAtNorte)).toBe(true);
    expect(await has(norte, "patients", patients.sur)).toBe(false);

    // An encounter recorded at the wrong branch is moved: its exam and diagnosis go with it, and
    // come back when it is moved back.
    for (const [to, from] of [
      [sur, norte],
      [norte, sur],
    ] as const) {
      await cloud`update encounters set branch_id = ${branchesOf.get(to) as string} where id = ${visit.encounter}`;
      await syncAll();
      await expectHoldsItsScope(norte);
      await expectHoldsItsScope(sur);
      for (const [table, rowId] of [
        ["encounters", visit.encounter],
        ["exam_eye", visit.exam],
        ["diagnoses", visit.diagnosis],
      ] as const) {
        expect(await has(to, table, rowId), table).toBe(true);
        expect(await has(from, table, rowId), table).toBe(false);
      }
    }
  });

  it("converges edits made at both clinics and the cloud, each clinic keeping to its scope", async () => {
    const both = id();
    await cloud`insert into appointments (id, branch_id, patient_id, starts_at, ends_at, reason, type)
      values (${both}, ${N}, ${patients.sur}, '2026-12-09T09:00:00-06:00', '2026-12-09T09:30:00-06:00', 'Control', 'follow_up')`;
    await syncAll();
    // The same patient, now at both clinics, edited at each and in the cloud, different columns.
    await norte.sql`update patients set phone = '55 1111 1111' where id = ${patients.sur}`;
    await sur.sql`update patients set email = 'maria.pena@example.mx' where id = ${patients.sur}`;
    await cloud`update patients set notes = 'Alergia a la penicilina' where id = ${patients.sur}`;
    await norte.sql`update patients set phone = '55 2222 2222' where id = ${patients.norte}`;
    await syncAll();
    await expectHoldsItsScope(norte);
    await expectHoldsItsScope(sur);
    const [merged] = await cloud<{ phone: string; email: string; notes: string }[]>`
      select phone, email, notes from patients where id = ${patients.sur}`;
    expect(merged).toEqual({
      phone: "55 1111 1111",
      email: "maria.pena@example.mx",
      notes: "Alergia a la penicilina",
    });
  });

  it("holds what a clinic sends outside its scope in the cloud's quarantine, applying none of it", async () => {
    // A tampered clinic server (its owner writes past row-level security): a patient of the far
    // branch, and an edit of a row Norte does not hold.
    const planted = id();
    await norte.sql`insert into patients (id, branch_id, first_name, last_name, birth_date, sex, phone)
      values (${planted}, ${F}, 'Intruso', 'Pérez', '1980-01-01', 'male', '55 0000 0000')`;
    // And the far branch's patient, written here as Norte's: inside Norte's scope as sent, outside
    // it as the cloud holds the row.
    await norte.sql`insert into patients (id, branch_id, first_name, last_name, birth_date, sex, phone)
      values (${patients.far}, ${N}, 'María José', 'Peña', '1962-07-14', 'female', '55 0000 0000')`;
    await once(norte);
    expect(await cloud`select 1 from patients where id = ${planted}`).toHaveLength(0);
    expect(await cloud`select branch_id, phone from patients where id = ${patients.far}`).toEqual([
      { branch_id: F, phone: "33 3615 0000" },
    ]);
    expect(
      await cloud`select reason from cv_sync.quarantine where row_id = ${patients.far} and reason like '%lies outside the branches of clinic%'`,
    ).toHaveLength(1);
    const held = await cloud<{ reason: string; row_id: string; first_name: string }[]>`
      select q.reason, q.row_id, q.change -> 'row_data' ->> 'first_name' as first_name
      from cv_sync.quarantine q where q.row_id = ${planted}`;
    expect(held).toEqual([
      {
        reason: expect.stringMatching(/^patients [0-9a-f-]{36} lies outside the branches of clinic clinic-/),
        row_id: planted,
        first_name: "Intruso",
      },
    ]);
    // The sync goes on: the next change of Norte arrives, and Norte drops the planted row.
    await norte.sql`update patients set phone = '55 3333 3333' where id = ${patients.norte}`;
    const next = await once(norte);
    expect(await has(norte, "patients", planted)).toBe(false);
    expect(await has(norte, "patients", patients.far)).toBe(false);
    // Its IT person is told.
    expect(next).toMatch(/^quarantined: the cloud refused 2 change\(s\) of this clinic/m);
    expect(await cli(sur, "once")).not.toMatchObject({ stdout: expect.stringContaining("quarantined") });
    expect(await cloud`select phone from patients where id = ${patients.norte}`).toEqual([
      { phone: "55 3333 3333" },
    ]);
  });

  it("evicts a patient once nothing here references them: a booking made here as the cloud cancelled their last one", async () => {
    // A patient of the far branch, seen at Norte for one appointment.
    const [patient, cancelled, rebooked] = [id(), id(), id()];
    await cloud`insert into patients (id, branch_id, first_name, last_name, birth_date, sex, phone)
      values (${patient}, ${F}, 'Rosa', 'Téllez', '1971-03-02', 'female', '55 1212 3434')`;
    await cloud`insert into appointments (id, branch_id, patient_id, starts_at, ends_at, reason, type)
      values (${cancelled}, ${N}, ${patient}, '2026-12-11T09:00:00-06:00', '2026-12-11T09:30:00-06:00', 'Control', 'follow_up')`;
    await once(norte);
    expect(await has(norte, "patients", patient)).toBe(true);
    // The cloud deletes that appointment while Norte's receptionist books the patient again.
    await cloud`delete from appointments where id = ${cancelled}`;
    const receptionist = await personAt("norte", staff.norte);
    await receptionist`insert into appointments (id, branch_id, patient_id, starts_at, ends_at, reason, type)
      values (${rebooked}, ${N}, ${patient}, '2026-12-11T10:00:00-06:00', '2026-12-11T10:30:00-06:00', 'Control', 'follow_up')`;
    // The pull evicts the patient, whom the new booking still references here: the patient stays.
    // The push then sends the booking, which the cloud refuses (its author no longer sees the
    // patient) and evicts; the next pull drops it, and with it the patient.
    await once(norte);
    expect(await has(norte, "patients", patient)).toBe(true);
    expect(await cloud`select 1 from cv_sync.quarantine where row_id = ${rebooked}`).toHaveLength(1);
    await once(norte);
    expect(await has(norte, "appointments", rebooked)).toBe(false);
    expect(await has(norte, "patients", patient)).toBe(false);
    expect(await norte.sql`select 1 from cv_sync.deferred_evictions`).toEqual([]);
    await expectHoldsItsScope(norte);
  });
});

describe("a change's author", { timeout: 90_000 }, () => {
  /** Norte's last log entry for a row, re-signed as `user`: what a tampered clinic server could send. */
  const authoredAs = async (rowId: string, user: string) => {
    await norte.sql`
      update cv_sync.change_log set author = ${JSON.stringify({ user })}::text::jsonb
      where (txid, seq) = (select txid, seq from cv_sync.change_log where row_id = ${rowId} order by seq desc limit 1)`;
  };

  it("must have been allowed to make it under the cloud's policies, or it is held in quarantine", async () => {
    // Sur's receptionist works at Sur only: an edit of Norte's patient in their name is refused.
    const receptionist = await personAt("norte", staff.norte);
    await receptionist`update patients set phone = '55 4444 4444' where id = ${patients.norte}`;
    await authoredAs(patients.norte, staff.sur);
    await once(norte);
    expect(await cloud`select phone from patients where id = ${patients.norte}`).not.toEqual([
      { phone: "55 4444 4444" },
    ]);
    const [held] = await cloud<{ reason: string; author: unknown }[]>`
      select reason, change -> 'author' as author from cv_sync.quarantine
      where row_id = ${patients.norte} order by created_at desc limit 1`;
    expect(held).toEqual({
      reason: expect.stringMatching(
        /was not its author's to make under the cloud's policies; sent by clinic clinic-/,
      ),
      author: { user: staff.sur },
    });
    // Norte is brought back to the cloud's row: a new version based on the refused one.
    await once(norte);
    const phoneOf = async (sql: postgres.Sql) =>
      (await sql<{ phone: string }[]>`select phone from patients where id = ${patients.norte}`)[0]?.phone;
    expect(await phoneOf(norte.sql)).toBe(await phoneOf(cloud));
    // The same edit by Norte's own receptionist is applied, naming them as its writer.
    await receptionist`update patients set phone = '55 5555 5555' where id = ${patients.norte}`;
    await once(norte);
    expect(await cloud`select phone, updated_by from patients where id = ${patients.norte}`).toEqual([
      { phone: "55 5555 5555", updated_by: staff.norte },
    ]);
    // An author that is no user id at all is refused too.
    await norte.sql`update patients set phone = '55 6666 6666' where id = ${patients.norte}`;
    await norte.sql`
      update cv_sync.change_log set author = '{"user": "robert'')--"}'
      where (txid, seq) = (select txid, seq from cv_sync.change_log where row_id = ${patients.norte} order by seq desc limit 1)`;
    await once(norte);
    expect(await cloud`select phone from patients where id = ${patients.norte}`).toEqual([
      { phone: "55 5555 5555" },
    ]);
    expect(
      await cloud`select 1 from cv_sync.quarantine where row_id = ${patients.norte} and reason like '%names an author that is not a user id%'`,
    ).toHaveLength(1);
  });

  it("names the writers the clinic server stamped: its author made it, and a row's creator never changes", async () => {
    const receptionist = await personAt("norte", staff.norte);
    const newPatient = id();
    await receptionist`insert into patients (id, branch_id, first_name, last_name, birth_date, sex, phone)
      values (${newPatient}, ${N}, 'Rosa', 'Téllez', '1971-03-02', 'female', '55 1212 3434')`;
    await once(norte);
    const writersOf = async (sql: postgres.Sql, rowId: string) =>
      (await sql`select created_by, updated_by from patients where id = ${rowId}`)[0];
    expect(await writersOf(cloud, newPatient)).toEqual({ created_by: staff.norte, updated_by: staff.norte });
    // The doctor of both branches edits it at Norte: the creator stays.
    const doctor = await personAt("norte", staff.both);
    await doctor`update patients set phone = '55 1212 5656' where id = ${newPatient}`;
    await once(norte);
    expect(await writersOf(cloud, newPatient)).toEqual({ created_by: staff.norte, updated_by: staff.both });

    // A tampered clinic server: an edit whose row names another writer than its author, and one
    // that rewrites who created the row. Both are held, neither is applied.
    const tamper = async (column: "created_by" | "updated_by", phone: string) => {
      await receptionist`update patients set phone = ${phone} where id = ${newPatient}`;
      await norte.sql`
        update cv_sync.change_log set row_data = jsonb_set(row_data, ${`{${column}}`}, to_jsonb(${staff.both}::text))
        where (txid, seq) = (select txid, seq from cv_sync.change_log where row_id = ${newPatient} order by seq desc limit 1)`;
      await once(norte);
      expect(await cloud`select phone from patients where id = ${newPatient}`).toEqual([
        { phone: "55 1212 5656" },
      ]);
      await once(norte);
      expect(await writersOf(norte.sql, newPatient)).toEqual(await writersOf(cloud, newPatient));
    };
    await tamper("updated_by", "55 1212 7878");
    await tamper("created_by", "55 1212 9090");
    expect(
      await cloud`select reason from cv_sync.quarantine where row_id = ${newPatient} order by created_at`,
    ).toEqual([
      {
        reason: expect.stringContaining(
          "names other writers (created_by, updated_by) than its author and the cloud's row",
        ),
      },
      {
        reason: expect.stringContaining(
          "names other writers (created_by, updated_by) than its author and the cloud's row",
        ),
      },
    ]);
  });
});

type Side = "cloud" | "norte" | "sur";

/** Who works at each clinic: its own receptionist, and the doctor of both branches. */
const peopleAt = { norte: () => [staff.norte, staff.both], sur: () => [staff.sur, staff.both] };
const sessions = new Map<string, postgres.Sql>();

/** A signed-in person at a clinic server, as its PCs connect. */
async function personAt(side: "norte" | "sur", user: string): Promise<postgres.Sql> {
  const key = `${side} ${user}`;
  let sql = sessions.get(key);
  if (sql === undefined) {
    sql = await (side === "norte" ? norte : sur).asPerson(user);
    sessions.set(key, sql);
  }
  return sql;
}

/**
 * A write someone at `side` could make: in the cloud its owner (any branch); at a clinic one of
 * its people, signed in, under row-level security (a refusal is what their app would see, and
 * changes nothing).
 */
async function randomWrite(random: () => number, side: Side, label: string): Promise<void> {
  const sql = side === "cloud" ? cloud : await personAt(side, pick(random, peopleAt[side]()));
  const branches = side === "cloud" ? [N, S, F] : [side === "norte" ? N : S];
  try {
    await randomWriteOn(random, sql, side, branches, label);
  } catch (error) {
    if (side === "cloud" || (error as { code?: string }).code !== "42501") throw error;
  }
}

async function randomWriteOn(
  random: () => number,
  sql: postgres.Sql,
  side: Side,
  branches: readonly string[],
  label: string,
): Promise<void> {
  const ours = [...Object.values(patients), ...planted];
  const held = (
    await sql<{ id: string }[]>`select id from patients where id = any(${ours}::uuid[]) order by id`
  ).map((r) => r.id);
  const doctors = (
    await sql<
      { id: string }[]
    >`select id from profiles where id = any(${Object.values(staff)}::uuid[]) order by id`
  ).map((r) => r.id);
  const appointments = (
    await sql<{ id: string }[]>`
      select a.id from appointments a
      where a.patient_id = any(${ours}::uuid[]) and a.branch_id = any(${branches}::uuid[])
        and not exists (select from encounters e where e.appointment_id = a.id)
      order by a.id`
  ).map((r) => r.id);
  const roll = random();
  if (roll < 0.25 && held.length > 0) {
    await sql`update patients set phone = ${`55 ${label.padStart(4, "0")} 0000`} where id = ${pick(random, held)}`;
  } else if (roll < 0.5 && held.length > 0) {
    await sql`insert into appointments (id, branch_id, patient_id, doctor_id, starts_at, ends_at, reason, type)
      values (${id()}, ${pick(random, branches)}, ${pick(random, held)}, ${doctors.length > 0 ? pick(random, doctors) : null},
        '2026-12-10T09:00:00-06:00', '2026-12-10T09:30:00-06:00', ${`Cita ${label}`}, 'follow_up')`;
  } else if (roll < 0.7 && appointments.length > 0) {
    await sql`delete from appointments where id = ${pick(random, appointments)}`;
  } else if (roll < 0.85 && side === "cloud" && appointments.length > 0) {
    await sql`update appointments set branch_id = ${pick(random, branches)} where id = ${pick(random, appointments)}`;
  } else {
    const patient = id();
    planted.push(patient);
    await sql`insert into patients (id, branch_id, first_name, last_name, birth_date, sex, phone)
      values (${patient}, ${pick(random, branches)}, 'Rosa', ${`Luna ${label}`}, '1990-03-02', 'female', '55 9999 0000')`;
  }
}
const planted: string[] = [];

describe("random edits at both clinics and the cloud", { timeout: 90_000 }, () => {
  it.each(testSeeds(2))(
    "seed %i: every clinic ends holding exactly its scope, equal to the cloud",
    async (seed) => {
      const random = seededRandom(seed);
      const started = (await cloud<{ now: Date }[]>`select now()`)[0]?.now ?? new Date(0);
      for (let round = 0; round < 4; round += 1) {
        for (let step = 0; step < 6; step += 1) {
          await randomWrite(
            random,
            pick(random, ["cloud", "norte", "sur"] as const),
            `${seed}${round}${step}`,
          );
        }
        // A partial sync between rounds: one clinic syncs, the other does not yet.
        await once(pick(random, [norte, sur]));
      }
      await syncAll();
      await once(norte);
      await expectHoldsItsScope(norte);
      await expectHoldsItsScope(sur);
      // The cloud's kept scopes are what the rows say now (cv_sync.row_scope over the live tables),
      // for every row of these branches: tracking missed no move.
      for (const table of SYNCED_TABLES) {
        const stale = await cloud<{ row_id: string; kept: string[]; now: string[] }[]>`
        select x.id as row_id, s.scope as kept, cv_sync.row_scope(${table}, to_jsonb(x)) as now
        from ${cloud(table)} x join cv_sync.scopes s on s.table_name = ${table} and s.row_id = x.id
        where (s.scope && ${[N, S, F]}::uuid[] or cv_sync.row_scope(${table}, to_jsonb(x)) && ${[N, S, F]}::uuid[])
          and s.scope is distinct from cv_sync.row_scope(${table}, to_jsonb(x))`;
        expect(stale, table).toEqual([]);
      }
      // What a clinic wrote was held back only where the cloud had meanwhile taken the row out of
      // that clinic's branch (its last appointment there cancelled or moved): the race the
      // quarantine is for, never an edit of a row still in the clinic's scope.
      const nodeOf = new Map<string, string>();
      for (const clinic of [norte, sur]) {
        const [node] = await clinic.sql<{ node_id: string }[]>`select node_id from cv_sync.node`;
        nodeOf.set(node?.node_id ?? "", branchesOf.get(clinic) ?? "");
      }
      const held = await cloud<{ source: string; table_name: string; scope: string[] | null }[]>`
      select q.source, q.table_name, s.scope, q.reason, q.change, q.current_row from cv_sync.quarantine q
      left join cv_sync.scopes s on s.table_name = q.table_name and s.row_id = q.row_id
      where q.created_at > ${started}`;
      for (const entry of held)
        expect(entry.scope ?? [], JSON.stringify(entry)).not.toContain(nodeOf.get(entry.source));
    },
  );
});
