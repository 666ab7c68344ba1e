import { randomBytes, randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createSqliteSource, type SqliteSource } from "@centrovision/adapter-sqlite";
import type { ConnectionMode, ConnectionStatus, CvError } from "@centrovision/core";
import { type ClientApplier, createClientApplier } from "@centrovision/offline";
import { applyMigrations, clinicSession, type PostgresServer, startPostgres } from "@centrovision/testkit";
import { Subject } from "rxjs";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createPatientAudit, type PatientAudit } from "../src/backend/patient-audit.js";
import { onDatabase } from "../src/demo/demo-stack.js";
import { waitFor } from "./support.js";

/*
 * The PC's side of the audit trail against a real clinic PostgreSQL with the migrations, as a PC
 * login acting as its person, and a real encrypted SQLite file for the openings it keeps. Which
 * tier the router works on is the test's to say (`mode`).
 */

const PC = { user: "pc_audit", password: "pc-audit-secret" };
const HOME = randomUUID();
const OTHER = randomUUID();
const people = { receptionist: randomUUID(), admin: randomUUID(), colleague: randomUUID() };
const patients = { seen: randomUUID(), elsewhere: randomUUID() };

let server: PostgresServer;
let db: string;
let dir: string;
let sqlite: SqliteSource;
let mode: ConnectionMode;
/** The trail cannot be emptied (nobody deletes an event): each test reads its own. */
let testStart: Date;
const appliers: ClientApplier[] = [];

/** The clinic server's applier, acting as `userId`. */
async function asPerson(userId: string): Promise<ClientApplier> {
  const token = await clinicSession(db, { userId });
  const url = new URL(db);
  url.username = PC.user;
  url.password = PC.password;
  const applier = createClientApplier({ postgres: { url: url.href, session: () => token } });
  appliers.push(applier);
  return applier;
}

async function auditAs(userId: string): Promise<PatientAudit> {
  const clinic = await asPerson(userId);
  return createPatientAudit({
    router: { getStatus: () => ({ mode }) as ConnectionStatus },
    store: sqlite,
    // This PC never works on the cloud here (`mode` is never "supabase").
    servers: { cloud: clinic, clinic },
    usable: () => ({ cloud: false, clinic: true }),
  });
}

const openings = (patient: string) =>
  onDatabase(
    db,
    (sql) => sql<{ user: string; at: Date }[]>`
      select author ->> 'user' as user, at from cv_audit.events
      where patient_id = ${patient} and action = 'open' and at >= ${testStart} order by at`,
  );

beforeAll(async () => {
  server = await startPostgres();
  db = await server.createDatabase("patient_audit");
  await applyMigrations(db);
  await onDatabase(db, async (sql) => {
    await sql`insert into branches (id, code, name, address) values
      (${HOME}, 'ROMA', 'Roma', 'Av. Álvaro Obregón 121'), (${OTHER}, 'SUR', 'Sur', 'Insurgentes 1')`;
    for (const [name, id] of Object.entries(people)) {
      await sql`insert into profiles (id, full_name) values (${id}, ${name})`;
      await sql`insert into user_branches (id, user_id, branch_id) values (${randomUUID()}, ${id}, ${HOME})`;
    }
    await sql`insert into user_roles (id, user_id, role) values (${randomUUID()}, ${people.admin}, 'admin')`;
    for (const [id, branch] of [
      [patients.seen, HOME],
      [patients.elsewhere, OTHER],
    ] as const) {
      await sql`insert into patients (id, branch_id, first_name, last_name, birth_date, sex, phone)
        values (${id}, ${branch}, 'Ramona', 'Íñiguez', '1944-02-29', 'female', '55 1234 0000')`;
    }
    await sql.unsafe(`create role ${PC.user} login password '${PC.password}' in role centrovision_app`);
  });
});

afterAll(async () => {
  await server?.stop();
});

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "cv-desktop-audit-"));
  sqlite = await createSqliteSource({ path: join(dir, "pc.cvdb"), key: new Uint8Array(randomBytes(32)) });
  testStart = new Date();
});

afterEach(async () => {
  await Promise.all(appliers.splice(0).map((applier) => applier.close()));
  await sqlite.close();
  await rm(dir, { recursive: true, force: true });
});

describe("the PC's openings of a record", () => {
  it("are recorded at once on the server the PC works on; a patient the person does not see is refused, not kept", async () => {
    mode = "local";
    const audit = await auditAs(people.receptionist);
    expect(await audit.opened(patients.seen, people.receptionist)).toBe("recorded");
    expect(await openings(patients.seen)).toEqual([{ user: people.receptionist, at: expect.any(Date) }]);
    await expect(audit.opened(patients.elsewhere, people.receptionist)).rejects.toMatchObject({
      code: "unauthorized",
    });
    expect(await sqlite.records("cv-openings")).toEqual([]);
  });

  it("are kept on this PC while no server answers and handed over with their time, by their own person only; one refused for good is dropped and said without ids", async () => {
    mode = "offline";
    const audit = await auditAs(people.receptionist);
    const before = new Date();
    expect(await audit.opened(patients.seen, people.receptionist)).toBe("held");
    // Seen on this PC's copy then, no longer by the time a server answers.
    expect(await audit.opened(patients.elsewhere, people.receptionist)).toBe("held");
    // A colleague signed in on this PC earlier: theirs wait for them.
    expect(await audit.opened(patients.seen, people.colleague)).toBe("held");
    const after = new Date();

    const errors: CvError[] = [];
    const status$ = new Subject<ConnectionStatus>();
    const delivering = audit.autoDeliver(status$, () => people.receptionist, {
      intervalMs: 60_000,
      onError: (error) => errors.push(error),
    });
    try {
      mode = "local";
      status$.next({ mode } as ConnectionStatus);
      await waitFor(
        "the opening on the clinic server",
        async () => (await openings(patients.seen)).length === 1,
      );
      await waitFor("the refusal said", async () => errors.length === 1);
    } finally {
      delivering.unsubscribe();
    }
    const [event] = await openings(patients.seen);
    expect(event?.user).toBe(people.receptionist);
    expect(event?.at.getTime()).toBeGreaterThanOrEqual(before.getTime());
    expect(event?.at.getTime()).toBeLessThanOrEqual(after.getTime());
    expect(await openings(patients.elsewhere)).toEqual([]);
    expect(errors[0]?.message).toMatch(/refused 1 opening\(s\) of a record kept on this PC/);
    expect(errors[0]?.message).not.toContain(patients.elsewhere);
    expect((await sqlite.records<{ userId: string }>("cv-openings")).map((r) => r.value.userId)).toEqual([
      people.colleague,
    ]);
  });
});

describe("the trail", () => {
  it("is an administrator's: with names; anyone else is told in Spanish, and offline it is unavailable", async () => {
    mode = "local";
    await (await auditAs(people.receptionist)).opened(patients.seen, people.receptionist);
    const admin = await auditAs(people.admin);
    expect(await admin.trail({ patientId: patients.seen, from: testStart.toISOString() })).toMatchObject([
      {
        action: "open",
        patientId: patients.seen,
        patientName: "Ramona Íñiguez",
        author: { name: "receptionist" },
      },
    ]);
    await expect((await auditAs(people.receptionist)).trail({})).rejects.toMatchObject({
      code: "unauthorized",
      message: "Solo un administrador de la clínica puede consultar la bitácora.",
    });
    mode = "offline";
    await expect(admin.trail({})).rejects.toMatchObject({ code: "unavailable" });
  });
});
