import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CvError } from "@centrovision/core";
import { createLink, type Link, type LocalSupabase, startLocalSupabase } from "@centrovision/testkit";
import postgres from "postgres";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createPcSession, type PcSession, type PcSessionOptions } from "../src/backend/session.js";
import { deriveSessionKey, encryptedFile, sessionPaths } from "../src/backend/session-store.js";
import { failure, waitFor } from "./support.js";

/*
 * The PC's session module against a real local Supabase (Auth included), through a link that
 * can refuse or blackhole, with the session's clock in the test's hands.
 */

const NURSE = {
  email: "enfermera@clinica.example",
  password: "una contraseña larga",
  name: "Enfermera Demo",
};
const BANNED = { email: "baja@clinica.example", password: "otra contraseña larga" };
const DAY = 86_400_000;

let cloud: LocalSupabase;
let link: Link;
let nurseId: string;
let dir: string;
let sqlitePath: string;
let sqliteKey: Uint8Array;
let skewMs: number;
let refreshRequests: number;
const opened: PcSession[] = [];

beforeAll(async () => {
  cloud = await startLocalSupabase({ log: () => {} });
  link = await createLink({ target: { host: "127.0.0.1", port: Number(new URL(cloud.url).port) } });
  nurseId = (await cloud.createUser(NURSE)).id;
  await cloud.createUser({ ...BANNED, banned: true });
  const sql = postgres(cloud.dbUrl, { max: 1, onnotice: () => {} });
  await sql`insert into profiles (id, full_name, email) values (${nurseId}, ${NURSE.name}, ${NURSE.email})`;
  await sql.end();
});

afterAll(async () => {
  await link?.close();
  await cloud?.stop();
});

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "cv-desktop-session-"));
  sqlitePath = join(dir, "local", "clinic.cvdb");
  sqliteKey = new Uint8Array(randomBytes(32));
  skewMs = 0;
  refreshRequests = 0;
});

afterEach(async () => {
  await Promise.all(opened.splice(0).map((session) => session.close()));
  await link.pass();
  await rm(dir, { recursive: true, force: true });
});

/** A backend start: a session over this test's files, reaching the cloud through the link. */
async function open(extra: Partial<PcSessionOptions> = {}): Promise<PcSession> {
  const session = await createPcSession({
    url: `http://127.0.0.1:${link.port}`,
    anonKey: cloud.anonKey,
    sqlitePath,
    sqliteKey,
    authTimeoutMs: 1_000,
    now: () => new Date(Date.now() + skewMs),
    fetch: (input, init) => {
      if (String(input).includes("grant_type=refresh_token")) refreshRequests++;
      return fetch(input, init);
    },
    onError: () => {},
    ...extra,
  });
  opened.push(session);
  return session;
}

async function restart(session: PcSession): Promise<PcSession> {
  await session.close();
  return open();
}

/** What the session file holds, decrypted as the backend would. */
function onDisk() {
  const key = deriveSessionKey(sqliteKey);
  return encryptedFile<{ items: Record<string, string>; identity: unknown }>(
    sessionPaths(sqlitePath).session,
    key,
    "session",
  ).read();
}

describe("signing in online", () => {
  it("returns who and how; the session files are encrypted and 0600, and a restart finds the session", async () => {
    const session = await open();
    const state = await session.signIn(" Enfermera@Clinica.example ", NURSE.password);
    expect(state).toMatchObject({
      signedIn: true,
      method: "online",
      user: { id: nurseId, email: NURSE.email, name: NURSE.name },
      cloudUsable: true,
    });
    expect(state.signedIn && Date.parse(state.expiresAt ?? "")).toBeGreaterThan(Date.now());
    const token = session.accessToken();
    const user = await fetch(`${cloud.url}/auth/v1/user`, {
      headers: { apikey: cloud.anonKey, authorization: `Bearer ${token}` },
    });
    expect(user.status).toBe(200);

    const paths = sessionPaths(sqlitePath);
    // This PC's verifier is made in the background, after the sign-in resolved.
    await waitFor("the offline verifier", () => stat(paths.verifiers).then(() => true));
    // Decrypted, the file holds auth-js's session; as bytes, none of it.
    expect((await onDisk())?.items["centrovision-auth"]).toContain(token);
    for (const path of [paths.session, paths.verifiers]) {
      const bytes = await readFile(path);
      for (const secret of [token, token.split(".")[1] ?? "", NURSE.email, NURSE.password, "access_token"]) {
        expect(bytes.includes(Buffer.from(secret))).toBe(false);
      }
      if (process.platform !== "win32") expect((await stat(path)).mode & 0o777).toBe(0o600);
    }

    const again = await restart(session);
    expect(again.current()).toMatchObject({ signedIn: true, method: "online", user: { id: nurseId } });
    expect(again.accessToken()).toBe(token);
  });

  it("a wrong password and an unknown email read alike; a banned account is told so", async () => {
    const session = await open();
    const wrong = await failure(() => session.signIn(NURSE.email, "not it"));
    const unknown = await failure(() => session.signIn("nadie@clinica.example", "not it"));
    for (const error of [wrong, unknown]) {
      expect(error).toMatchObject({ code: "unauthorized", message: "Correo o contraseña incorrectos." });
    }
    expect(await failure(() => session.signIn(BANNED.email, BANNED.password))).toMatchObject({
      code: "unauthorized",
      message: "Su cuenta está desactivada. Consulte al administrador.",
    });
    expect(session.current()).toEqual({ signedIn: false });
    expect(() => session.accessToken()).toThrow(CvError);
  });
});

describe("renewing the session", () => {
  it.each([
    ["refused", () => link.refuse()],
    ["blackholed", () => link.blackhole()],
  ])(
    "a refresh while the link is %s keeps the person signed in, and succeeds once it is back",
    async (_, cut) => {
      const session = await open();
      await session.signIn(NURSE.email, NURSE.password);
      const before = session.accessToken();
      await cut();
      const refreshing = session.refresh();
      // auth-js retries a network failure with back-off: wait for its second attempt.
      await waitFor("a retried refresh", async () => refreshRequests >= 2, 10_000);
      expect(session.current()).toMatchObject({ signedIn: true, method: "online" });
      expect((await onDisk())?.identity).not.toBeNull();
      await link.pass();
      expect(await refreshing).toBe(true);
      expect(session.accessToken()).not.toBe(before);
      expect(session.current()).toMatchObject({ signedIn: true, cloudUsable: true });
    },
  );

  it("two renewals racing both succeed, and the token they leave works", async () => {
    const session = await open();
    await session.signIn(NURSE.email, NURSE.password);
    const before = session.accessToken();
    expect(await Promise.all([session.refresh(), session.refresh()])).toEqual([true, true]);
    expect(session.accessToken()).not.toBe(before);
    const user = await fetch(`${cloud.url}/auth/v1/user`, {
      headers: { apikey: cloud.anonKey, authorization: `Bearer ${session.accessToken()}` },
    });
    expect(user.status).toBe(200);
    // A restart while the cloud is unreachable finds the person still signed in.
    await link.refuse();
    expect((await restart(session)).current()).toMatchObject({ signedIn: true, method: "online" });
  });

  it("a refresh the cloud refuses for good ends the session at once, on disk too", async () => {
    const session = await open();
    await session.signIn(NURSE.email, NURSE.password);
    // Signed out everywhere by someone else: every refresh token of the person is revoked.
    const everywhere = await fetch(`${cloud.url}/auth/v1/logout?scope=global`, {
      method: "POST",
      headers: { apikey: cloud.anonKey, authorization: `Bearer ${session.accessToken()}` },
    });
    expect(everywhere.status).toBe(204);
    expect(await session.refresh()).toBe(false);
    expect(session.current()).toEqual({ signedIn: false });
    expect(await onDisk()).toEqual({ items: {}, identity: null });
    expect((await restart(session)).current()).toEqual({ signedIn: false });
  });
});

describe("signing out", () => {
  it("while offline clears the session at once and for good; the cloud is told when it can be", async () => {
    const session = await open();
    await session.signIn(NURSE.email, NURSE.password);
    const token = session.accessToken();
    await link.blackhole();
    await session.signOut();
    expect(session.current()).toEqual({ signedIn: false });
    expect(await onDisk()).toEqual({ items: {}, identity: null });
    const again = await restart(session);
    expect(again.current()).toEqual({ signedIn: false });
    // Online, sign-out also ends the session in the cloud.
    await link.pass();
    await again.signIn(NURSE.email, NURSE.password);
    const second = again.accessToken();
    await again.signOut();
    await again.close();
    const user = await fetch(`${cloud.url}/auth/v1/user`, {
      headers: { apikey: cloud.anonKey, authorization: `Bearer ${second}` },
    });
    expect(user.status).toBe(403);
    expect(token).not.toBe(second);
  });
});

describe("signing in on this PC while the cloud is unreachable", () => {
  async function afterAnOnlineSignIn(): Promise<PcSession> {
    const session = await open();
    await session.signIn(NURSE.email, NURSE.password);
    await session.signOut();
    await link.refuse();
    return session;
  }

  it("checks the verifier of the last online sign-in; wrong passwords read as online; unknown accounts cannot", async () => {
    const session = await afterAnOnlineSignIn();
    const state = await session.signIn(NURSE.email, NURSE.password);
    expect(state).toMatchObject({
      signedIn: true,
      method: "device",
      user: { id: nurseId, email: NURSE.email, name: NURSE.name },
      cloudUsable: false,
    });
    expect(state.signedIn && Date.parse(state.expiresAt ?? "") - Date.now()).toBeGreaterThan(6.9 * DAY);
    expect(() => session.accessToken()).toThrow(/no online session/);
    expect(await failure(() => session.signIn(NURSE.email, "not it"))).toMatchObject({
      code: "unauthorized",
      message: "Correo o contraseña incorrectos.",
    });
    expect(await failure(() => session.signIn("nadie@clinica.example", "not it"))).toMatchObject({
      code: "unavailable",
      message: "Sin conexión con la nube y este equipo no tiene una sesión reciente de esta cuenta.",
    });
    // A restart keeps a device sign-in too.
    await session.signIn(NURSE.email, NURSE.password);
    expect((await restart(session)).current()).toMatchObject({ signedIn: true, method: "device" });
  });

  it("the verifier is good for offline_days after the last online sign-in, and so is a device sign-in", async () => {
    const session = await afterAnOnlineSignIn();
    skewMs = 6.5 * DAY;
    expect(await session.signIn(NURSE.email, NURSE.password)).toMatchObject({ method: "device" });
    skewMs = 7.5 * DAY;
    expect(session.current()).toEqual({ signedIn: false });
    expect(await failure(() => session.signIn(NURSE.email, NURSE.password))).toMatchObject({
      code: "unavailable",
    });
    const shorter = await open({ offlineDays: 1 });
    skewMs = 1.5 * DAY;
    expect((await failure(() => shorter.signIn(NURSE.email, NURSE.password))).code).toBe("unavailable");
  });

  it("an online sign-in made while this PC's clock ran ahead leaves no offline sign-in once it is right", async () => {
    skewMs = Date.parse("9999-01-01T00:00:00Z") - Date.now();
    const session = await afterAnOnlineSignIn();
    skewMs = 0;
    expect(await failure(() => session.signIn(NURSE.email, NURSE.password))).toMatchObject({
      code: "unavailable",
      message: "Sin conexión con la nube y este equipo no tiene una sesión reciente de esta cuenta.",
    });
    // One online sign-in stamps a new verifier; a clock ahead by less than the allowed skew is fine.
    await link.pass();
    skewMs = 2 * 60_000;
    const again = await afterAnOnlineSignIn();
    skewMs = 0;
    expect(await again.signIn(NURSE.email, NURSE.password)).toMatchObject({ method: "device" });
  });

  it("five wrong passwords lock the account on this PC for 15 minutes, across a restart", async () => {
    const session = await afterAnOnlineSignIn();
    for (let attempt = 0; attempt < 5; attempt++) {
      expect((await failure(() => session.signIn(NURSE.email, `guess ${attempt}`))).message).toBe(
        "Correo o contraseña incorrectos.",
      );
    }
    const locked = { code: "unauthorized", message: "Demasiados intentos. Espere 15 minutos." };
    expect(await failure(() => session.signIn(NURSE.email, NURSE.password))).toMatchObject(locked);
    const again = await restart(session);
    expect(await failure(() => again.signIn(NURSE.email, NURSE.password))).toMatchObject(locked);
    skewMs = 16 * 60_000;
    expect(await again.signIn(NURSE.email, NURSE.password)).toMatchObject({ method: "device" });
  });

  it("a file encrypted with another PC's key is ignored: signed out, no offline sign-in", async () => {
    const session = await afterAnOnlineSignIn();
    await session.signIn(NURSE.email, NURSE.password);
    await session.close();
    sqliteKey = new Uint8Array(randomBytes(32));
    const elsewhere = await open();
    expect(elsewhere.current()).toEqual({ signedIn: false });
    expect((await failure(() => elsewhere.signIn(NURSE.email, NURSE.password))).code).toBe("unavailable");
  });
});
