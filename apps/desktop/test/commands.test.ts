import { randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import { request } from "node:http";
import { type ConnectionStatus, PRODUCT_VERSION } from "@centrovision/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Demo, onDatabase, startDemo } from "../src/demo/demo-stack.js";
import { todayInMexicoCity } from "../src/demo/seed.js";
import { call, clinicSessionHeld, cloudRows, waitFor } from "./support.js";

type Failure = { code: string; message: string; issues?: { path: string }[] };
type Item = {
  id: string;
  patient_name: string;
  starts_at: string;
  status: string;
  checked_in_at: string | null;
};

type Session = {
  signedIn: boolean;
  user?: { id: string; email: string; name: string };
  method?: "online" | "clinic" | "device";
  expiresAt?: string | null;
  needsOnlineSignIn?: boolean;
  needsClinicSignIn?: boolean;
  admin?: boolean;
};

let demo: Demo;
let branchId: string;
let patientId: string;
const today = todayInMexicoCity();
/** Bookings go to tomorrow: one for today may already be in the past when the tests run, and is refused. */
const tomorrow = nextDay(today);
/** How far the PC's session clock is ahead of real time (a long outage, without waiting it out). */
let skewMs = 0;

beforeAll(async () => {
  demo = await startDemo({ port: 0, now: () => new Date(Date.now() + skewMs) });
  branchId = demo.clinic.branches[0]?.id ?? "";
  patientId = demo.clinic.rows.patients?.find((p) => p.branch_id === branchId)?.id ?? "";
});

afterAll(() => demo?.stop());

const status = async () => (await call<ConnectionStatus>(demo, "get_connection_status")).body;
const session = async () => (await call<Session>(demo, "get_session")).body;
const signInAs = (who: "receptionist" | "doctor" | "admin", password: string = demo.accounts[who].password) =>
  call<Session & Failure>(demo, "sign_in", { email: demo.accounts[who].email, password });

describe("signing in on the desktop", () => {
  it("before anyone signs in, only the session and the connection icon answer, and the router stays below the cloud", async () => {
    expect(await session()).toEqual({ signedIn: false });
    const refused = await call<Failure>(demo, "get_appointments", { branch_id: branchId, date: today });
    expect(refused).toMatchObject({
      status: 403,
      body: { code: "unauthorized", message: "Inicie sesión para continuar." },
    });
    expect((await call<Failure>(demo, "list_dead_letters")).status).toBe(403);
    expect((await call<Failure>(demo, "trigger_sync")).status).toBe(403);
    const connection = await call<ConnectionStatus>(demo, "get_connection_status");
    expect(connection.status).toBe(200);
    expect(await call(demo, "get_app_info")).toEqual({ status: 200, body: { version: PRODUCT_VERSION } });
    // Nobody's session opens a server: the router works on this PC alone.
    expect(connection.body.pinned).toBe("device");
    expect(connection.body.mode).toBe("offline");
    await waitFor("the cloud answering its probes", async () => (await status()).tiers.cloud.health === "up");
    expect(await status()).toMatchObject({
      mode: "offline",
      reason: "no server is used until a person signs in",
    });
  });

  it("a wrong password is refused in Spanish, and a malformed email is a 400 that echoes nothing", async () => {
    const wrong = await signInAs("receptionist", "not-the-password");
    expect(wrong).toMatchObject({
      status: 403,
      body: { code: "unauthorized", message: "Correo o contraseña incorrectos." },
    });
    const malformed = await call<Failure>(demo, "sign_in", { email: "recepcion-at-clinic", password: "x" });
    expect(malformed.status).toBe(400);
    expect(malformed.body.issues?.map((i) => i.path)).toEqual(["email"]);
    expect(JSON.stringify(malformed.body)).not.toContain("recepcion-at-clinic");
    expect(await session()).toEqual({ signedIn: false });
  });

  it("the receptionist signs in online: who and how are returned, and the PC goes to the cloud", async () => {
    const { status: code, body } = await signInAs("receptionist");
    expect(code).toBe(200);
    expect(body).toMatchObject({
      signedIn: true,
      user: {
        id: demo.clinic.receptionistId,
        email: demo.accounts.receptionist.email,
        name: demo.accounts.receptionist.name,
      },
      method: "online",
      needsOnlineSignIn: false,
    });
    expect(Date.parse(body.expiresAt ?? "")).toBeGreaterThan(Date.now());
    expect(await session()).toEqual(body);
    await waitFor("the router on the cloud", async () => {
      const now = await status();
      return now.mode === "supabase" && now.tiers.cloud.health === "up" && now.pinned === null;
    });
  });
});

describe("desktop backend commands over the invoke transport (cloud tier, real local Supabase)", () => {
  it("get_connection_status reports the cloud with every tier's health", async () => {
    const { status, body } = await call<ConnectionStatus>(demo, "get_connection_status");
    expect(status).toBe(200);
    expect(body.mode).toBe("supabase");
    expect(Object.keys(body.tiers)).toEqual(["cloud", "clinic", "device"]);
  });

  it("get_appointments returns the branch's day in its time zone, ordered, with patient names", async () => {
    const { status, body } = await call<Item[]>(demo, "get_appointments", {
      branch_id: branchId,
      date: today,
    });
    expect(status).toBe(200);
    expect(body).toHaveLength(8);
    expect(body.map((a) => a.starts_at)).toEqual([...body.map((a) => a.starts_at)].sort());
    expect(body.every((a) => a.patient_name.length > 3)).toBe(true);
  });

  it("an invalid date is a 400 with a Spanish message and the field's path", async () => {
    const { status, body } = await call<Failure>(demo, "get_appointments", {
      branch_id: branchId,
      date: "2026-02-30",
    });
    expect(status).toBe(400);
    expect(body.code).toBe("invalid_input");
    expect(body.message).toMatch(/fecha inválida/);
    expect(body.issues?.map((i) => i.path)).toEqual(["date"]);
  });

  it("an unknown branch is a 404 naming what is missing", async () => {
    const { status, body } = await call<Failure>(demo, "get_appointments", {
      branch_id: "00000000-0000-4000-8000-000000000000",
      date: today,
    });
    expect(status).toBe(404);
    expect(body).toMatchObject({ code: "not_found", message: "La sucursal indicada no existe." });
  });

  it("create_appointment refuses an unknown patient, and a valid one lands in the cloud", async () => {
    const base = {
      branch_id: branchId,
      starts_at: `${tomorrow}T19:00:00-06:00`,
      reason: "Revisión de presión intraocular",
      type: "follow_up",
    };
    const unknown = await call<Failure>(demo, "create_appointment", {
      ...base,
      patient_id: "00000000-0000-4000-8000-000000000001",
    });
    expect(unknown.status).toBe(404);
    expect(unknown.body.message).toMatch(/paciente indicado no existe/);
    expect(unknown.body.issues?.map((i) => i.path)).toEqual(["patient_id"]);

    const created = await call<{ id: string; ends_at: string }>(demo, "create_appointment", {
      ...base,
      patient_id: patientId,
      duration_minutes: 45,
    });
    expect(created.status).toBe(200);
    expect(created.body.ends_at).toBe(`${nextDay(tomorrow)}T01:45:00.000Z`);
    const rows = await cloudRows(
      demo,
      (sql) => sql`select status from appointments where id = ${created.body.id}`,
    );
    expect(rows).toEqual([{ status: "scheduled" }]);
  });

  it("update_appointment_status checks a patient in (status and time), in the cloud", async () => {
    const { body: day } = await call<Item[]>(demo, "get_appointments", { branch_id: branchId, date: today });
    const target = day.find((a) => a.status === "scheduled" || a.status === "confirmed");
    expect(target).toBeDefined();
    const { status, body } = await call<Item>(demo, "update_appointment_status", {
      appointment_id: target?.id,
      status: "checked_in",
    });
    expect(status).toBe(200);
    expect(body.status).toBe("checked_in");
    expect(body.checked_in_at).not.toBeNull();
    const rows = await cloudRows(
      demo,
      (sql) =>
        sql`select status, checked_in_at is not null as stamped from appointments where id = ${target?.id ?? ""}`,
    );
    expect(rows).toEqual([{ status: "checked_in", stamped: true }]);
    const bad = await call<Failure>(demo, "update_appointment_status", {
      appointment_id: target?.id,
      status: "llegó",
    });
    expect(bad.status).toBe(400);
    expect(bad.body.message).toMatch(/^estado: elija programada, confirmada, .* o no asistió \(scheduled, /);
  });

  it("search_patients ignores accents and case, and finds by document", async () => {
    const { body } = await call<{ full_name: string; document_id: string }[]>(demo, "search_patients", {
      query: "NUNEZ",
    });
    expect(body.length).toBeGreaterThan(0);
    expect(body.every((p) => p.full_name.includes("Núñez"))).toBe(true);
    const byDocument = await call<{ document_id: string }[]>(demo, "search_patients", { query: "demo1003" });
    expect(byDocument.body.map((p) => p.document_id)).toEqual(["DEMO1003"]);
    const short = await call<Failure>(demo, "search_patients", { query: "a" });
    expect(short.status).toBe(400);
    expect(short.body.message).toMatch(/al menos 2 letras/);
  });

  it("create_patient registers a patient in the cloud; a duplicate document is a 409 without patient data", async () => {
    const patient = {
      branch_id: branchId,
      first_name: "Itzel",
      last_name: "Xochitl",
      birth_date: "1990-05-17",
      sex: "female",
      phone: "+52 55 1111 2222",
      document_id: "xoit900517",
    };
    const created = await call<{ id: string; document_id: string }>(demo, "create_patient", patient);
    expect(created.status).toBe(200);
    expect(created.body.document_id).toBe("XOIT900517");
    const rows = await cloudRows(
      demo,
      (sql) => sql`select last_name from patients where id = ${created.body.id}`,
    );
    expect(rows).toEqual([{ last_name: "Xochitl" }]);
    const again = await call<Failure>(demo, "create_patient", { ...patient, first_name: "Otra" });
    expect(again.status).toBe(409);
    expect(again.body.message).toMatch(/Ya existe un paciente con ese documento/);
    expect(JSON.stringify(again.body)).not.toMatch(/XOIT|Xochitl|Otra/);
  });

  it("every bad argument is listed; unknown commands and bodies that are not JSON are refused", async () => {
    const bad = await call<Failure>(demo, "create_patient", { branch_id: "x", sex: "?", colour: "blue" });
    expect(bad.status).toBe(400);
    const paths = bad.body.issues?.map((i) => i.path) ?? [];
    expect(paths).toEqual(
      expect.arrayContaining(["branch_id", "first_name", "birth_date", "sex", "phone", "colour"]),
    );
    expect((await call<Failure>(demo, "drop_everything")).status).toBe(404);
    const notJson = await call<Failure>(demo, "get_appointments", "{not json");
    expect(notJson).toMatchObject({ status: 400, body: { code: "invalid_input" } });
  });

  it("answers only the app: its launch's secret, its own origin, JSON bodies; never another route through '..'", async () => {
    const post = (path: string, headers: Record<string, string>, body?: string) =>
      fetch(`${demo.url}${path}`, { method: "POST", headers, ...(body !== undefined && { body }) });
    const app = { authorization: `Bearer ${demo.secret}` };
    const json = { ...app, "content-type": "application/json" };
    // Another process on this PC, or another OS user: no secret, or a wrong one.
    const anyone = await post("/invoke/get_connection_status", { "content-type": "application/json" }, "{}");
    expect(anyone.status).toBe(401);
    expect(await anyone.json()).toEqual({
      code: "unauthorized",
      message: "Este servicio solo responde a la aplicación CentroVision de este equipo.",
    });
    const guessed = {
      "content-type": "application/json",
      authorization: `Bearer ${"x".repeat(demo.secret.length)}`,
    };
    expect((await post("/invoke/get_connection_status", guessed, "{}")).status).toBe(401);
    expect((await fetch(`${demo.url}/metrics`)).status).toBe(401);
    expect((await post("/demo/internet/off", { "content-type": "application/json" }, "{}")).status).toBe(401);
    // A web page: its origin, and the bodies it can send without a preflight (text/plain, empty).
    expect(
      (await post("/invoke/get_connection_status", { ...json, origin: "https://evil.example" }, "{}")).status,
    ).toBe(403);
    const plain = await post(
      "/invoke/create_patient",
      { ...app, "content-type": "text/plain" },
      JSON.stringify({ branch_id: branchId }),
    );
    expect(plain.status).toBe(415);
    expect((await post("/invoke/get_connection_status", app)).status).toBe(415);
    expect((await post("/demo/internet/off", app)).status).toBe(415);
    // Media types are case-insensitive; the app's own origin is welcome.
    const upper = {
      ...app,
      "content-type": "APPLICATION/JSON; charset=UTF-8",
      origin: new URL(demo.url).origin,
    };
    expect((await post("/invoke/get_connection_status", upper, "{}")).status).toBe(200);
    expect(
      (await post("/invoke/search_patients", json, JSON.stringify({ query: "x".repeat(1_100_000) }))).status,
    ).toBe(413);
    // Paths are routed as sent: no '..' into the demo's switches, no 500 on a broken escape.
    const raw = (path: string, headers: Record<string, string>) =>
      new Promise<number>((resolve, reject) => {
        const { port } = new URL(demo.url);
        const req = request({ host: "127.0.0.1", port, method: "POST", path, headers });
        req.on("response", (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on("error", reject);
        req.end("{}");
      });
    expect(await raw("/invoke/../demo/internet/off", json)).toBe(400);
    expect(await raw("/invoke/%2e%2e/demo/internet/off", json)).toBe(400);
    expect(await raw("/invoke/get_session%", json)).toBe(400);
    expect(await (await fetch(`${demo.url}/demo/state`, { headers: app })).json()).toMatchObject({
      internet: true,
    });
    // DNS rebinding: another Host.
    expect(
      await raw("/invoke/get_connection_status", { ...json, host: `evil.example:${new URL(demo.url).port}` }),
    ).toBe(403);
  });

  it("list_conflicts reads the clinic server's open conflicts; resolve_conflict needs one choice", async () => {
    const listed = await call<unknown[]>(demo, "list_conflicts");
    expect(listed.status).toBe(200);
    expect(Array.isArray(listed.body)).toBe(true);
    const neither = await call<Failure>(demo, "resolve_conflict", {
      conflict_id: "00000000-0000-4000-8000-000000000002",
    });
    expect(neither.status).toBe(400);
    expect(neither.body.message).toMatch(/indique keep/);
  });

  it("an offline change the cloud refuses for good waits in the dead letters until a person discards it; the metrics show the trip", async () => {
    type Letter = { table: string; id: string; code: string; message: string };
    await Promise.all([demo.setInternet(false), demo.setClinicServer(false)]);
    await waitFor(
      "the offline tier",
      async () => {
        const { body } = await call<ConnectionStatus>(demo, "get_connection_status");
        return body.mode === "offline";
      },
      20_000,
    );
    const offline = await call<{ id: string }>(demo, "create_patient", {
      branch_id: branchId,
      first_name: "Citlali",
      last_name: "Offline",
      birth_date: "1985-03-02",
      sex: "female",
      phone: "+52 55 3333 4444",
      document_id: "DEADLETTER01",
    });
    expect(offline.status).toBe(200);
    // Meanwhile reception at another PC registered the same document in the cloud.
    const template = demo.clinic.rows.patients?.find((p) => p.branch_id === branchId);
    await cloudRows(
      demo,
      (sql) =>
        sql`insert into patients ${sql({
          ...template,
          id: randomUUID(),
          version: randomUUID(),
          base_version: null,
          document_id: "DEADLETTER01",
        } as Record<string, unknown>)} returning id`,
    );
    // The internet first, so the outbox drains to the cloud. (Drained to the clinic server first,
    // the duplicate would meet the cloud's in the sync, which stops for a person: CV004.)
    await demo.setInternet(true);

    let letters: Letter[] = [];
    await waitFor(
      "the refused change among the dead letters",
      async () => {
        letters = (await call<Letter[]>(demo, "list_dead_letters")).body;
        return letters.length === 1;
      },
      30_000,
    );
    expect(letters[0]).toMatchObject({ table: "patients", id: offline.body.id, code: "constraint" });
    expect(JSON.stringify(letters)).not.toMatch(/Citlali|DEADLETTER01/);
    // Discarding needs the server's row: offline, this PC's copy (which holds the edit) is no
    // answer, and the letter stays.
    await demo.setInternet(false);
    await waitFor("offline", async () => (await status()).mode === "offline");
    const offlineDiscard = await call<Failure>(demo, "discard_dead_letter", {
      table: "patients",
      id: offline.body.id,
    });
    expect(offlineDiscard).toMatchObject({ status: 503, body: { code: "unavailable" } });
    expect((await call<Letter[]>(demo, "list_dead_letters")).body).toHaveLength(1);
    // Only this person may settle it: signing out says so first.
    expect(await call(demo, "sign_out")).toMatchObject({
      status: 409,
      body: {
        code: "conflict",
        message:
          "Tiene 1 cambio que el servidor rechazó, por revisar en Conflictos: solo usted puede revisarlo, al volver a iniciar sesión en este equipo.",
      },
    });
    expect(await session()).toMatchObject({ signedIn: true });
    await demo.setInternet(true);
    await demo.setClinicServer(true);
    // A refused change does not block the rest: the PC goes back to the cloud with nothing pending.
    await waitFor(
      "the cloud with nothing pending",
      async () => {
        const { body } = await call<ConnectionStatus>(demo, "get_connection_status");
        return body.mode === "supabase" && body.pendingChanges === 0;
      },
      30_000,
    );

    const unknown = await call<Failure>(demo, "retry_dead_letter", { table: "patients", id: randomUUID() });
    expect(unknown.status).toBe(404);
    const discarded = await call(demo, "discard_dead_letter", { table: "patients", id: offline.body.id });
    expect(discarded.status).toBe(200);
    expect((await call<Letter[]>(demo, "list_dead_letters")).body).toEqual([]);

    // The trip shows in the router's metrics, as a scraper given the secret reads them.
    const metrics = await (
      await fetch(`${demo.url}/metrics`, { headers: { authorization: `Bearer ${demo.secret}` } })
    ).text();
    const value = (line: string) => Number(metrics.match(new RegExp(`^${line} (\\S+)$`, "m"))?.[1]);
    expect(value("centrovision_router_switches_total")).toBeGreaterThanOrEqual(2);
    expect(value('centrovision_router_mode{mode="supabase"}')).toBe(1);
    expect(value('centrovision_router_tier_up{tier="cloud"}')).toBe(1);
    expect(value('centrovision_router_time_in_tier_seconds{tier="device"}')).toBeGreaterThan(0);
    expect(value("centrovision_pending_changes")).toBe(0);
    expect(value("centrovision_router_hedged_reads_total")).toBeGreaterThanOrEqual(
      value("centrovision_router_hedges_won_total"),
    );
    expect(metrics).not.toMatch(/Citlali|DEADLETTER01/);
  }, 120_000);
});

describe("sessions across outages: no pending write is ever dropped", () => {
  type Created = { id: string };
  // Each at its own hour: the same patient twice at one time would be refused as a double booking.
  const appointment = (reason: string, hour: number) => ({
    branch_id: branchId,
    patient_id: patientId,
    starts_at: `${tomorrow}T${hour}:00:00-06:00`,
    reason,
    type: "follow_up",
  });
  const inCloud = async (id: string) =>
    (await cloudRows(demo, (sql) => sql`select id from appointments where id = ${id}`)).length === 1;
  const cutEverything = async () => {
    await Promise.all([demo.setInternet(false), demo.setClinicServer(false)]);
    await waitFor("the offline tier", async () => (await status()).mode === "offline", 20_000);
  };
  const restoreEverything = async () => {
    await Promise.all([demo.setInternet(true), demo.setClinicServer(true)]);
    await waitFor("the cloud again", async () => (await status()).mode === "supabase", 30_000);
  };

  it("signed out in an outage, back in on this PC, then online: the outbox waits for the online sign-in and drains", async () => {
    await cutEverything();
    const offline = await call<Created>(
      demo,
      "create_appointment",
      appointment("Control (salida sin red)", 20),
    );
    expect(offline.status).toBe(200);
    await waitFor("the write in the outbox", async () => (await status()).pendingChanges === 1);

    // Asked first: the write waits for this person's next sign-in here, nobody else can send it.
    expect(await call(demo, "sign_out")).toMatchObject({
      status: 409,
      body: {
        code: "conflict",
        message:
          "Tiene 1 cambio hecho en este equipo que aún no llega a un servidor: se enviará cuando vuelva a iniciar sesión aquí, y nadie más puede enviarlo.",
      },
    });
    expect(await session()).toMatchObject({ signedIn: true });
    // Sign-out needs no network: the local session is gone at once (supabase-js #2501 kept it).
    expect(await call(demo, "sign_out", { leave_unsent: true })).toEqual({
      status: 200,
      body: { signedIn: false },
    });
    expect(await session()).toEqual({ signedIn: false });
    expect((await call(demo, "get_appointments", { branch_id: branchId, date: today })).status).toBe(403);

    // Without the cloud: the verifier of the earlier online sign-in, on this PC. A wrong password
    // reads as online; an account that never signed in here cannot sign in offline.
    expect((await signInAs("receptionist", "not-the-password")).body).toMatchObject({
      code: "unauthorized",
      message: "Correo o contraseña incorrectos.",
    });
    expect(await signInAs("doctor")).toMatchObject({
      status: 503,
      body: {
        code: "unavailable",
        message: "Sin conexión con la nube y este equipo no tiene una sesión reciente de esta cuenta.",
      },
    });
    const onDevice = await signInAs("receptionist");
    expect(onDevice.body).toMatchObject({
      signedIn: true,
      method: "device",
      user: { id: demo.clinic.receptionistId, name: demo.accounts.receptionist.name },
      needsOnlineSignIn: false,
    });
    expect((await call(demo, "get_appointments", { branch_id: branchId, date: today })).status).toBe(200);

    // The internet is back: the device sign-in is asked to sign in online, and nothing reaches the
    // cloud meanwhile (no session for it), nor is anything dropped.
    await demo.setInternet(true);
    await waitFor("the banner's condition", async () => (await session()).needsOnlineSignIn === true, 20_000);
    expect((await status()).pendingChanges).toBe(1);
    expect(await inCloud(offline.body.id)).toBe(false);

    expect((await signInAs("receptionist")).body).toMatchObject({
      method: "online",
      needsOnlineSignIn: false,
    });
    await waitFor("the outbox drained to the cloud", async () => inCloud(offline.body.id), 20_000);
    await restoreEverything();
    await waitFor("nothing pending", async () => (await status()).pendingChanges === 0);
  }, 120_000);

  it("after a long outage the session is renewed, or, refused for good, asks to sign in again: the outbox keeps its writes", async () => {
    await cutEverything();
    const offline = await call<Created>(
      demo,
      "create_appointment",
      appointment("Control (apagón largo)", 21),
    );
    expect(offline.status).toBe(200);
    await waitFor("the write in the outbox", async () => (await status()).pendingChanges === 1);

    // Two hours pass: the access token expired during the outage. The person stays signed in,
    // but the cloud is not used with an expired token.
    skewMs = 2 * 3_600_000;
    expect(await session()).toMatchObject({ signedIn: true, method: "online" });
    await waitFor("the router held below the cloud", async () => (await status()).pinned === "clinic");
    // Meanwhile the cloud ended the session (an administrator signed the person out everywhere).
    await cloudRows(
      demo,
      (sql) => sql`delete from auth.sessions where user_id = ${demo.clinic.receptionistId} returning id`,
    );
    await demo.setInternet(true);
    expect(await demo.session.refresh()).toBe(false);
    expect(await session()).toEqual({ signedIn: false });
    expect((await status()).pendingChanges).toBe(1);
    expect(await inCloud(offline.body.id)).toBe(false);

    skewMs = 0;
    expect((await signInAs("receptionist")).body).toMatchObject({ signedIn: true, method: "online" });
    await waitFor("the outbox drained to the cloud", async () => inCloud(offline.body.id), 20_000);
    await restoreEverything();

    // Renewed normally: a new access token, the same person, the cloud still in use.
    const before = demo.session.accessToken();
    expect(await demo.session.refresh()).toBe(true);
    expect(demo.session.accessToken()).not.toBe(before);
    expect((await call(demo, "get_appointments", { branch_id: branchId, date: today })).status).toBe(200);
  }, 120_000);
});

describe("a clinic session that expires in a long outage", () => {
  it("holds the PC on itself while the clinic server answers, says so, and a sign-in at the clinic server opens it again", async () => {
    expect((await signInAs("receptionist")).body).toMatchObject({ method: "online" });
    await clinicSessionHeld(demo);
    await demo.setInternet(false);
    await waitFor("the clinic server", async () => (await status()).mode === "local", 20_000);
    expect(await session()).toMatchObject({ needsClinicSignIn: false });

    // Thirteen hours on: the access token and the 12-hour clinic session have both expired.
    skewMs = 13 * 3_600_000;
    await waitFor("the router held on this PC", async () => (await status()).pinned === "device");
    expect(await status()).toMatchObject({
      mode: "offline",
      reason: "the clinic server is used only for a person with a clinic session",
    });
    expect(await session()).toMatchObject({ signedIn: true, method: "online", needsClinicSignIn: true });
    expect((await call(demo, "get_appointments", { branch_id: branchId, date: today })).status).toBe(200);

    skewMs = 0;
    await call(demo, "sign_out");
    expect((await signInAs("receptionist")).body).toMatchObject({
      method: "clinic",
      needsClinicSignIn: false,
    });
    await waitFor("the clinic server again", async () => (await status()).mode === "local", 20_000);
    await demo.setInternet(true);
    expect((await signInAs("receptionist")).body).toMatchObject({ method: "online" });
  }, 90_000);
});

function nextDay(date: string): string {
  const d = new Date(`${date}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + 1);
  return d.toISOString().slice(0, 10);
}

describe("a patient's record and the audit trail", () => {
  type Opened = {
    patient: { id: string; full_name: string };
    appointments: { patient_id: string }[];
    audit: string;
  };
  type TrailEvent = { action: string; patientId: string; at: string; author: { name: string | null } | null };
  /** A patient on today's agenda of the PC's branch: in its offline copy too. */
  const onAgenda = () =>
    demo.clinic.rows.appointments?.find((a) => a.branch_id === branchId && a.starts_at.startsWith(today))
      ?.patient_id as string;
  const openings = (patient: string) =>
    cloudRows(
      demo,
      (sql) => sql<{ user: string; at: Date }[]>`
        select author ->> 'user' as user, at from cv_audit.events
        where patient_id = ${patient} and action = 'open' order by at`,
    );

  it("is recorded in the trail, in the person's name, before it is shown; the trail is for administrators only", async () => {
    expect((await signInAs("receptionist")).body).toMatchObject({ method: "online", admin: false });
    await waitFor("the cloud", async () => (await status()).mode === "supabase", 30_000);
    const patient = onAgenda();
    const opened = await call<Opened>(demo, "open_patient", { patient_id: patient });
    expect(opened.status, JSON.stringify(opened.body)).toBe(200);
    expect(opened.body).toMatchObject({ patient: { id: patient }, audit: "recorded" });
    expect(opened.body.appointments.length).toBeGreaterThan(0);
    expect(opened.body.appointments.every((a) => a.patient_id === patient)).toBe(true);
    expect(await openings(patient)).toEqual([{ user: demo.clinic.receptionistId, at: expect.any(Date) }]);

    const missing = await call<Failure>(demo, "open_patient", { patient_id: randomUUID() });
    expect(missing).toMatchObject({ status: 404, body: { code: "not_found" } });
    expect(await call<Failure>(demo, "get_audit_trail", {})).toMatchObject({
      status: 403,
      body: {
        code: "unauthorized",
        message: "Solo un administrador de la clínica puede consultar la bitácora.",
      },
    });
  });

  it("with no server answering, an opening is kept on this PC with its time, and reaches a server once one answers", async () => {
    const patient = onAgenda();
    await Promise.all([demo.setInternet(false), demo.setClinicServer(false)]);
    await waitFor("the offline tier", async () => (await status()).mode === "offline", 20_000);
    const before = Date.now();
    const opened = await call<Opened>(demo, "open_patient", { patient_id: patient });
    expect(opened.body).toMatchObject({ patient: { id: patient }, audit: "held" });
    const after = Date.now();
    expect(await call<Failure>(demo, "get_audit_trail", {})).toMatchObject({ status: 503 });

    await Promise.all([demo.setInternet(true), demo.setClinicServer(true)]);
    await waitFor("the cloud again", async () => (await status()).mode === "supabase", 30_000);
    await waitFor(
      "the held opening in the cloud's trail",
      async () => (await openings(patient)).length === 2,
      30_000,
    );
    // It went through the clinic server, as the PC's other calls there: across the (demo's) LAN
    // every connection of the PC is TLS, verified against the clinic's CA.
    const clinicDb = /^CLINIC_DB_URL='(.+)'$/m.exec(
      await readFile(demo.databaseUrlsFile, "utf8"),
    )?.[1] as string;
    const links = await onDatabase(
      clinicDb,
      (sql) => sql<{ ssl: boolean }[]>`
        select s.ssl from pg_stat_ssl s join pg_stat_activity a using (pid) where a.usename = 'demo_recepcion_pc1'`,
    );
    expect(links.length).toBeGreaterThan(0);
    expect(links.every((link) => link.ssl)).toBe(true);
    const held = (await openings(patient))[1];
    expect(held?.user).toBe(demo.clinic.receptionistId);
    expect(held?.at.getTime()).toBeGreaterThanOrEqual(before - 1);
    expect(held?.at.getTime()).toBeLessThanOrEqual(after);
  }, 90_000);

  it("an administrator reads who opened and changed a patient's record, with names", async () => {
    const patient = onAgenda();
    expect((await signInAs("admin")).body).toMatchObject({ method: "online", admin: true });
    const trail = await call<TrailEvent[]>(demo, "get_audit_trail", { patient_id: patient });
    expect(trail.status).toBe(200);
    const opens = trail.body.filter((e) => e.action === "open");
    expect(opens).toHaveLength(2);
    for (const event of opens) {
      expect(event).toMatchObject({ patientId: patient, author: { name: demo.accounts.receptionist.name } });
    }
    const backwards = await call<Failure>(demo, "get_audit_trail", {
      from: "2026-12-05T00:00:00-06:00",
      to: "2026-12-04T00:00:00-06:00",
    });
    expect(backwards.status).toBe(400);
    expect(backwards.body.issues?.map((i) => i.path)).toEqual(["to"]);
    expect((await signInAs("receptionist")).body).toMatchObject({ admin: false });
  });
});
