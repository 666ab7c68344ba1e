import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CvError } from "@centrovision/core";
import { asClinicPerson } from "@centrovision/testkit";
import postgres from "postgres";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createClinicDoor } from "../src/backend/clinic-door.js";
import { createPcSession, type PcSession, type PcSessionOptions } from "../src/backend/session.js";
import { sessionPaths } from "../src/backend/session-store.js";
import { onDatabase } from "../src/demo/demo-stack.js";
import { type ClinicStack, startClinicStack } from "./clinic-stack.js";
import { failure, waitFor } from "./support.js";

/*
 * The PC's person on the clinic server: a real local Supabase (the cloud, minting clinic sessions
 * for the key the clinic registered), a real clinic PostgreSQL with the migrations (verifying them,
 * and signing in offline), each behind a link the test cuts.
 */

const NURSE = {
  email: "enfermera@clinica.example",
  password: "una contraseña larga",
  name: "Enfermera Clínica",
};

let stack: ClinicStack;
let dir: string;
let sqlitePath: string;
let sqliteKey: Uint8Array;
let skewMs: number;
const opened: PcSession[] = [];

/** Who a token is on the clinic server, asked as the PC login acting as that person. */
async function whoIs(token: string): Promise<string | CvError> {
  const sql = postgres(stack.pcLoginUrl(true), {
    max: 1,
    onnotice: () => {},
    connection: asClinicPerson(token),
  });
  try {
    const [row] = await sql<{ uid: string }[]>`select auth.uid()::text as uid`;
    return row?.uid ?? "";
  } catch (error) {
    return new CvError("unauthorized", String((error as { code?: string }).code));
  } finally {
    await sql.end({ timeout: 1 });
  }
}

beforeAll(async () => {
  stack = await startClinicStack(NURSE, "clinic_session");
});

afterAll(() => stack?.stop());

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "cv-desktop-clinic-"));
  sqlitePath = join(dir, "local", "clinic.cvdb");
  sqliteKey = new Uint8Array(randomBytes(32));
  skewMs = 0;
  await onDatabase(
    stack.clinicDb,
    (sql) => sql`truncate cv_auth.verifiers, cv_auth.disabled_users, cv_auth.ended_sessions`,
  );
});

afterEach(async () => {
  await Promise.all(opened.splice(0).map((session) => session.close()));
  await Promise.all([stack.internet.pass(), stack.lan.pass()]);
  await rm(dir, { recursive: true, force: true });
});

async function open(extra: Partial<PcSessionOptions> = {}): Promise<PcSession> {
  const session = await createPcSession({
    url: stack.cloudUrl,
    anonKey: stack.cloud.anonKey,
    sqlitePath,
    sqliteKey,
    authTimeoutMs: 1_000,
    now: () => new Date(Date.now() + skewMs),
    clinic: createClinicDoor({ url: stack.pcLoginUrl(), timeoutMs: 1_000 }),
    onError: () => {},
    ...extra,
  });
  opened.push(session);
  return session;
}

const enrolled = () =>
  onDatabase(
    stack.clinicDb,
    (sql) =>
      sql<{ user_id: string; verifier: string }[]>`select user_id::text, verifier from cv_auth.verifiers`,
  );

/** Signs in online, waits for the clinic session and the clinic's verifier, then signs out. */
async function afterAnOnlineSignIn(session: PcSession): Promise<void> {
  await session.signIn(NURSE.email, NURSE.password);
  await waitFor("the clinic's verifier", async () => (await enrolled()).length === 1);
  await session.signOut();
}

describe("the clinic session of a person signed in online", () => {
  it("comes from the cloud, works on the clinic server as that person, is kept encrypted, and leaves a bcrypt verifier there", async () => {
    const session = await open();
    await session.signIn(NURSE.email, NURSE.password);
    await waitFor("the clinic session", async () => session.clinicToken() !== undefined);
    const token = session.clinicToken() as string;
    expect(session.current()).toMatchObject({ method: "online", cloudUsable: true, clinicUsable: true });
    expect(await whoIs(token)).toBe(stack.personId);

    await waitFor("the clinic's verifier", async () => (await enrolled()).length === 1);
    const [verifier] = await enrolled();
    expect(verifier?.user_id).toBe(stack.personId);
    expect(verifier?.verifier).toMatch(/^\$2a\$10\$/);
    expect(verifier?.verifier).not.toContain(NURSE.password);

    const bytes = await readFile(sessionPaths(sqlitePath).session);
    expect(bytes.includes(Buffer.from(token.split(".")[1] ?? ""))).toBe(false);
  });

  it("is renewed from the cloud once it is clinicRenewMs old, and the renewed one works", async () => {
    const session = await open({ clinicRenewMs: 10 * 60_000 });
    await session.signIn(NURSE.email, NURSE.password);
    await waitFor("the clinic session", async () => session.clinicToken() !== undefined);
    const first = session.clinicToken();
    expect(await session.renewClinic()).toBe(true);
    expect(session.clinicToken()).toBe(first);
    skewMs = 11 * 60_000;
    expect(await session.renewClinic()).toBe(true);
    expect(session.clinicToken()).not.toBe(first);
    expect(await whoIs(session.clinicToken() as string)).toBe(stack.personId);
  });

  it("ends on the clinic server at sign-out: the token is refused there even if someone kept a copy", async () => {
    const session = await open();
    await session.signIn(NURSE.email, NURSE.password);
    await waitFor("the clinic session", async () => session.clinicToken() !== undefined);
    const token = session.clinicToken() as string;
    await session.signOut();
    await waitFor("the clinic's sign-out", async () => (await whoIs(token)) instanceof CvError);
    expect(await whoIs(token)).toMatchObject({ message: "CV010" });
    expect(session.clinicToken()).toBeUndefined();
  });
});

describe("signing in at the clinic server while the cloud is unreachable", () => {
  it("checks the clinic's verifier: the person works on the clinic server, signed in 'clinic', across a restart", async () => {
    const session = await open();
    await afterAnOnlineSignIn(session);
    await stack.internet.refuse();
    const state = await session.signIn(NURSE.email, NURSE.password);
    expect(state).toMatchObject({
      signedIn: true,
      method: "clinic",
      user: { id: stack.personId, email: NURSE.email, name: NURSE.name },
      cloudUsable: false,
      clinicUsable: true,
    });
    expect(await whoIs(session.clinicToken() as string)).toBe(stack.personId);
    await session.close();
    const again = await open();
    expect(again.current()).toMatchObject({ signedIn: true, method: "clinic", clinicUsable: true });
  });

  it("a wrong password reads as online; five lock the account on the clinic server for every PC", async () => {
    const session = await open();
    await afterAnOnlineSignIn(session);
    await stack.internet.refuse();
    for (let attempt = 0; attempt < 5; attempt++) {
      expect(await failure(() => session.signIn(NURSE.email, `guess ${attempt}`))).toMatchObject({
        code: "unauthorized",
        message: "Correo o contraseña incorrectos.",
      });
    }
    const locked = { code: "unauthorized", message: "Demasiados intentos. Espere 15 minutos." };
    expect(await failure(() => session.signIn(NURSE.email, NURSE.password))).toMatchObject(locked);
    // Another PC (its own files) meets the same lock on the clinic server.
    const otherPc = await open({ sqlitePath: join(dir, "other", "clinic.cvdb") });
    expect(await failure(() => otherPc.signIn(NURSE.email, NURSE.password))).toMatchObject(locked);
  });

  it("a user the cloud disabled cannot sign in at the clinic, and this PC forgets their verifier", async () => {
    const session = await open();
    await afterAnOnlineSignIn(session);
    await stack.internet.refuse();
    await onDatabase(
      stack.clinicDb,
      (sql) =>
        sql`select public.cv_clinic_set_disabled_users(${JSON.stringify([stack.personId])}::text::jsonb)`,
    );
    expect(await failure(() => session.signIn(NURSE.email, NURSE.password))).toMatchObject({
      code: "unauthorized",
      message: "Su cuenta está desactivada. Consulte al administrador.",
    });
    await stack.lan.refuse();
    expect((await failure(() => session.signIn(NURSE.email, NURSE.password))).code).toBe("unavailable");
  });

  it("with the clinic server down too, this PC's own verifier signs the person in (no clinic session)", async () => {
    const session = await open();
    await afterAnOnlineSignIn(session);
    await Promise.all([stack.internet.refuse(), stack.lan.refuse()]);
    expect(await session.signIn(NURSE.email, NURSE.password)).toMatchObject({
      method: "device",
      cloudUsable: false,
      clinicUsable: false,
    });
    expect(session.clinicToken()).toBeUndefined();
  });

  it("a person the clinic server does not know yet falls back to this PC's verifier", async () => {
    const session = await open();
    await afterAnOnlineSignIn(session);
    await onDatabase(stack.clinicDb, (sql) => sql`truncate cv_auth.verifiers`);
    await stack.internet.refuse();
    expect(await session.signIn(NURSE.email, NURSE.password)).toMatchObject({ method: "device" });
  });
});
