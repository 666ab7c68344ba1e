import { type ConnectionStatus, PRODUCT_VERSION } from "@centrovision/core";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Demo, startDemo } from "../src/demo/demo-stack.js";
import { addDays, dayHeading } from "../src/ui/types.js";
import { UI_DIR } from "../src/ui-bundle.js";
import { bookedAcrossBranches, call, cloudRows, waitFor } from "../test/support.js";
import {
  axeLog,
  expectAccessible,
  expectIndicator,
  readAgendaWatch,
  screenshot,
  signIn,
  watchAgenda,
} from "./browser-page.js";
import { CHROMIUM, CHROMIUM_ARGS } from "./chromium.js";
import { deskSteps, RUN, readAtSwitch, TODAY, TOMORROW, ZONE } from "./desk-steps.js";

let demo: Demo;
let browser: Browser;
let page: Page;
let desk: ReturnType<typeof deskSteps>;
/** Reason text of each appointment created through the UI, by state. */
const created: Record<string, string> = {};
/** Second surnames of the patients registered through the UI. */
const registered: string[] = [];

beforeAll(async () => {
  demo = await startDemo({ port: 0, uiDir: UI_DIR });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
  page = await browser.newPage({ viewport: { width: 1280, height: 860 }, locale: "es-MX", timezoneId: ZONE });
  await page.goto(demo.appUrl);
  desk = deskSteps(page);
});

afterAll(async () => {
  console.log(`[desktop e2e] axe findings by view: ${JSON.stringify(axeLog)}`);
  await browser?.close();
  await demo?.stop();
});

const signInForm = () => page.getByTestId("sign-in-form");
const header = () => page.getByTestId("session-user");
const banner = () => page.getByTestId("mode-banner");
const heading = () => desk.heading();
const column = (name: string) => desk.column(name);
const doctors = () => {
  const sur = demo.clinic.branches[0]?.name ?? "";
  return {
    sur,
    mariana: demo.accounts.doctor.name,
    emilio: "Dr. Emilio Cárdenas Uribe",
    lucia: "Dra. Lucía Fernández Ibarra",
  };
};
describe("a receptionist's morning across the four demo scenarios, in a real browser", () => {
  it("sign-in: a wrong password is refused inline in Spanish; the receptionist's opens on this PC's branch, today, a column per doctor", async () => {
    await signInForm().waitFor();
    await expectAccessible(page, "inicio de sesión");
    await screenshot(page, "0-iniciar-sesion");
    const { email, password, name } = demo.accounts.receptionist;
    await signIn(page, email, "no-es-la-contraseña");
    await expect
      .poll(() => signInForm().getByRole("alert").textContent())
      .toBe("Correo o contraseña incorrectos.");
    expect(await signInForm().getByLabel("Contraseña").getAttribute("aria-invalid")).toBe("true");
    await signIn(page, email, password);
    await expect.poll(() => header().textContent()).toBe(`${name} · ${email}`);
    expect(await signInForm().count()).toBe(0);
    // The PC's own branch (Sur in the demo's config), not the first by name (Polanco).
    const home = demo.clinic.branches[0];
    await expect.poll(() => page.getByTestId("branch").inputValue()).toBe(home?.id);
    expect(await page.getByTestId("branch").locator("option:checked").textContent()).toBe(
      `${home?.name} (sucursal de este equipo)`,
    );
    await expect.poll(() => heading().textContent()).toBe(`${dayHeading(TODAY, ZONE)} (hoy) · ${home?.name}`);
    await page.getByTestId("agenda").waitFor();
    const { mariana, emilio, lucia } = doctors();
    for (const doctor of [mariana, emilio, lucia, "Sin médico asignado"]) {
      expect(await column(doctor).count(), doctor).toBe(1);
    }
  });

  it("normal: cloud, no banner; days change without stale rows; a slot click books; an overlap is refused, then confirmed", async () => {
    await expectIndicator(page, "cloud", /^Conectado a la nube/);
    expect(await banner().count()).toBe(0);
    await page.getByTestId("patient-query").fill("a");
    await page.getByRole("button", { name: "Buscar", exact: true }).click();
    await expect.poll(() => page.getByRole("alert").first().textContent()).toMatch(/al menos 2 letras/);

    const todayIds = new Set(
      await page
        .getByTestId("agenda")
        .locator("[data-appointment-id]")
        .evaluateAll((blocks) => blocks.map((b) => b.getAttribute("data-appointment-id"))),
    );
    expect(todayIds.size).toBeGreaterThan(0);
    await watchAgenda(page);
    await desk.showDay(TOMORROW);
    const { frames } = await readAgendaWatch(page);
    const stale = frames.filter(
      (f) => f.heading.startsWith(dayHeading(TOMORROW, ZONE)) && f.ids.some((id) => todayIds.has(id)),
    );
    expect(stale, "today's appointments shown under tomorrow's heading").toEqual([]);
    // The other branch, and back: never this branch's rows under the other's name.
    const [sur, polanco] = demo.clinic.branches;
    const surIds = new Set([
      ...todayIds,
      ...(await page
        .getByTestId("agenda")
        .locator("[data-appointment-id]")
        .evaluateAll((blocks) => blocks.map((b) => b.getAttribute("data-appointment-id")))),
    ]);
    await watchAgenda(page);
    await page.getByTestId("branch").selectOption(polanco?.id ?? "");
    await expect.poll(() => heading().textContent()).toBe(`${dayHeading(TOMORROW, ZONE)} · ${polanco?.name}`);
    await expect
      .poll(() => page.getByTestId("agenda").locator("[data-appointment-id]").count())
      .toBeGreaterThan(0);
    const mixed = (await readAgendaWatch(page)).frames.filter(
      (f) => f.heading.includes(polanco?.name ?? "-") && f.ids.some((id) => surIds.has(id)),
    );
    expect(mixed, "Sur's appointments shown under Polanco's heading").toEqual([]);
    await page.getByTestId("branch").selectOption(sur?.id ?? "");
    await expect.poll(() => heading().textContent()).toBe(`${dayHeading(TOMORROW, ZONE)} · ${sur?.name}`);
    await page.getByTestId("agenda").waitFor();

    const { mariana } = doctors();
    created.nube = await desk.bookAtSlot("nube", "18:00", mariana);
    await desk.expectBooked(created.nube, mariana);
    // The same patient at the same time, in another column: refused, saying why, until confirmed.
    const overlap = await desk.bookAtSlot("nube empalme", "18:00", null, "");
    const refusal = page.getByTestId("appointment-overlap");
    await refusal.waitFor({ timeout: 15_000 });
    expect(((await refusal.textContent()) ?? "").length).toBeGreaterThan(30);
    expect(
      await column("Sin médico asignado").getByTestId("appointment").filter({ hasText: overlap }).count(),
    ).toBe(0);
    await refusal.getByRole("button", { name: "Agendar de todos modos" }).click();
    await desk.expectBooked(overlap, null);
    created["nube-empalme"] = overlap;
    // Arrivals are recorded on the day itself only.
    expect(await page.getByRole("button", { name: /^Registrar llegada de / }).count()).toBe(0);
    await screenshot(page, "8-agenda-del-dia");
  }, 120_000);

  it("normal: a new patient is registered from 'Sin resultados': every problem listed at once, then selected for booking", async () => {
    await desk.openRegistration("Nube");
    const form = page.getByTestId("patient-form");
    await form.getByLabel("Primer apellido").fill("Quintanilla");
    await form.getByLabel("Fecha de nacimiento").fill("2030-01-01");
    await form.getByLabel("Teléfono").fill("12");
    await form.getByLabel("Correo electrónico").fill("no-es-un-correo");
    await form.getByRole("button", { name: "Registrar paciente" }).click();
    const summary = page.getByTestId("patient-form-errors");
    await summary.waitFor({ timeout: 15_000 });
    for (const label of ["Nombre(s)", "Fecha de nacimiento", "Teléfono", "Correo electrónico"]) {
      const field = form.getByLabel(label);
      expect(await field.getAttribute("aria-invalid"), label).toBe("true");
      const described = (await field.getAttribute("aria-describedby")) ?? "";
      expect(((await page.locator(`[id="${described}"]`).textContent()) ?? "").length, label).toBeGreaterThan(
        3,
      );
      expect(await summary.textContent(), label).toContain(`${label}:`);
    }
    expect(await form.getByLabel("Primer apellido").getAttribute("aria-invalid")).toBe("false");
    expect(await summary.locator("li").count()).toBeGreaterThanOrEqual(4);
    await expectAccessible(page, "registro de paciente");
    await screenshot(page, "9-registro-paciente");
    registered.push((await desk.registerPatient("Nube")).second);
  }, 90_000);

  it("normal: a past time is refused, saying so; a check-in moves the patient to the waiting room, waiting since then", async () => {
    await desk.showDay(addDays(TODAY, -1));
    expect(await page.getByRole("button", { name: /^Agendar a las / }).count()).toBe(0);
    const form = page.getByTestId("appointment-form");
    await form.getByLabel("Hora").fill("10:00");
    await form.getByLabel("Motivo").fill(`Cita en el pasado (${RUN})`);
    await form.getByRole("button", { name: "Agendar cita" }).click();
    await expect
      .poll(() => page.getByTestId("appointment-message").textContent())
      .toBe("La hora de la cita ya pasó: elija una hora futura.");
    expect(await page.getByTestId("appointment-message").getAttribute("role")).toBe("alert");
    await desk.showDay(TODAY);
    const checkIn = page.getByRole("button", { name: /^Registrar llegada de / }).first();
    const patient = ((await checkIn.getAttribute("aria-label")) ?? "").replace("Registrar llegada de ", "");
    expect(patient.length).toBeGreaterThan(5);
    await checkIn.click();
    const waiting = page.getByTestId("waiting-room").locator("li", { hasText: patient });
    await expect.poll(() => waiting.count(), { timeout: 15_000 }).toBe(1);
    expect(await waiting.getByTestId("waiting-since").textContent()).toMatch(
      /^esperando desde \d\d:\d\d \(\d+ minutos?\)$/,
    );
    const block = page
      .getByTestId("appointment")
      .filter({ hasText: patient })
      .filter({ hasText: "En sala de espera" });
    await expect.poll(() => block.count()).toBeGreaterThan(0);
    await expectAccessible(page, "agenda");
    await expectIndicator(page, "cloud", /^Conectado a la nube$/);
    await screenshot(page, "1-nube");
  }, 90_000);

  it("internet cut: the server icon, the clinic server's banner, the agenda re-read at the switch, booking there", async () => {
    await desk.showDay(TOMORROW);
    await watchAgenda(page);
    await page.getByRole("button", { name: "Cortar internet" }).click();
    await expectIndicator(page, "server", /^Servidor local/);
    await expect
      .poll(() => banner().textContent())
      .toMatch(/^Trabajando con el servidor de la clínica — \d+ cambios? se enviar(á|án) a la nube$/);
    const { calls, modeChanges } = await readAgendaWatch(page);
    expect(readAtSwitch(calls, modeChanges, "servidor de la clínica"), "get_appointments at the switch").toBe(
      true,
    );
    created.servidor = await desk.bookAtSlot("servidor", "18:30", doctors().emilio);
    await desk.expectBooked(created.servidor, doctors().emilio);
    await screenshot(page, "2-servidor-local");
  }, 90_000);

  it("clinic server stopped too: offline banner, the other branch shown as not available, registering and booking still work", async () => {
    await watchAgenda(page);
    await page.getByRole("button", { name: "Detener servidor de la clínica" }).click();
    await expectIndicator(page, "offline", /^Sin conexión/);
    await expect
      .poll(() => banner().textContent())
      .toMatch(
        /^Sin conexión: trabajando en este equipo — \d+ cambios? pendientes?; puede seguir trabajando$/,
      );
    const { calls, modeChanges } = await readAgendaWatch(page);
    expect(
      readAtSwitch(calls, modeChanges, "este equipo (sin conexión)"),
      "get_appointments at the switch",
    ).toBe(true);

    const [sur, polanco] = demo.clinic.branches;
    const options = page.getByTestId("branch").locator("option");
    await expect
      .poll(() => options.filter({ hasText: polanco?.name ?? "-" }).textContent())
      .toBe(`${polanco?.name} — no disponible sin conexión`);
    expect(await options.filter({ hasText: polanco?.name ?? "-" }).isDisabled()).toBe(true);
    expect(await page.getByTestId("branch-note").textContent()).toBe(
      `Disponible sin conexión: solo ${sur?.name}.`,
    );
    // The developer panel speaks Spanish, without the packages' internal tags.
    const panel =
      (await page.getByRole("region", { name: "Panel de desarrollador (demostración)" }).textContent()) ?? "";
    expect(panel).toMatch(/Modo: este equipo \(sin conexión\)/);
    expect(panel).toMatch(/Servidor de la clínica: no responde/);
    expect(panel).toContain(`Versión ${PRODUCT_VERSION}`);
    expect(panel).not.toMatch(/\[[a-z-]+\]|stopped answering|timed out|cannot reach|connection/);

    created["sin-conexion"] = await desk.bookAtSlot("sin-conexion", "19:00", doctors().lucia);
    await desk.expectBooked(created["sin-conexion"], doctors().lucia);
    // Meanwhile Dra. Fernández is booked online at 19:05, in the cloud this PC cannot reach, for a
    // patient other than the one booked here (found as "nunez").
    const online = `Reservada en línea (${RUN})`;
    created["en-linea"] = online;
    await cloudRows(
      demo,
      (sql) => sql<{ id: string }[]>`
        insert into appointments (id, branch_id, patient_id, doctor_id, starts_at, ends_at, reason, type)
        select gen_random_uuid(), ${sur?.id ?? ""}, p.id, d.id, ${`${TOMORROW}T19:05:00-06:00`},
          ${`${TOMORROW}T19:25:00-06:00`}, ${online}, 'follow_up'
        from patients p, profiles d
        where p.branch_id = ${sur?.id ?? ""} and d.full_name = ${doctors().lucia}
          and 'Núñez' not in (p.last_name, coalesce(p.second_last_name, ''))
        order by p.id limit 1
        returning id`,
    );
    await desk.openRegistration("Local");
    registered.push((await desk.registerPatient("Local")).second);
    created["sin-conexion-nuevo"] = await desk.bookAtSlot(
      "sin-conexion paciente nuevo",
      "19:30",
      doctors().lucia,
      "",
    );
    await desk.expectBooked(created["sin-conexion-nuevo"], doctors().lucia);
    await expectIndicator(page, "offline", /^Sin conexión \(\d+ pendientes?\)$/);
    // Signing out now would leave those writes for her next sign-in here: asked first, she stays.
    await page.getByRole("button", { name: "Cerrar sesión", exact: true }).click();
    const unsent = page.getByTestId("sign-out-unsent");
    await expect
      .poll(() => unsent.textContent())
      .toMatch(
        /^Tiene \d+ cambios? hechos? en este equipo que aún no llegan? a un servidor: se enviarán? cuando vuelva a iniciar sesión aquí/,
      );
    await screenshot(page, "12-cerrar-sesion-con-cambios", unsent);
    await unsent.getByRole("button", { name: "Seguir en la sesión" }).click();
    await expect.poll(() => unsent.count()).toBe(0);
    expect(await header().count()).toBe(1);
    await screenshot(page, "3-sin-conexion");
    await screenshot(page, "10-aviso-sin-conexion", banner());
    // Booked on the clinic server just before it stopped: in this PC's copy (no double booking from a stale copy).
    await expect
      .poll(() => page.getByTestId("agenda").textContent(), { timeout: 10_000 })
      .toContain(created.servidor);
  }, 120_000);

  it("restored: the internet first, and the offline booking that clashes with the online one is shown for review", async () => {
    await page.getByRole("button", { name: "Restaurar internet" }).click();
    // The outbox drains to the cloud, which finds Dra. Fernández booked twice between 19:05 and 19:25.
    const clash = page.getByTestId("double-bookings-banner");
    await expect
      .poll(() => clash.textContent(), { timeout: 30_000 })
      .toBe(
        "Una cita agendada sin conexión se empalma con otra que se hizo mientras tanto. Revisar citas dobles",
      );
    await expectIndicator(page, "cloud", /^Conectado a la nube$/);
    await clash.getByRole("button", { name: "Revisar citas dobles" }).click();
    const review = page.getByRole("region", { name: "Cita doble por revisar" });
    await expect.poll(() => review.textContent()).toContain(created["en-linea"]);
    expect(await review.textContent()).toContain("el médico ya tenía otra cita a esa hora");
    expect(await review.textContent()).toContain(created["sin-conexion"]);
    await expectAccessible(page, "citas dobles");
    await screenshot(page, "11-cita-doble");
    await review.getByRole("button", { name: "Mantener ambas citas" }).click();
    // Settled, it leaves the list.
    await expect
      .poll(() => page.getByRole("main").textContent())
      .toMatch(/Ninguna cita agendada sin conexión se empalmó con otra/);
    // Back on the agenda the count is asked again; answered late, the banner must not show the
    // one from before the review meanwhile.
    const counted = "**/invoke/list_double_bookings";
    await page.route(counted, async (route) => {
      await new Promise((resolve) => setTimeout(resolve, 500));
      await route.continue();
    });
    const answered = page.waitForResponse((response) =>
      response.url().endsWith("/invoke/list_double_bookings"),
    );
    await page.getByRole("button", { name: "Agenda", exact: true }).click();
    expect(await clash.count()).toBe(0);
    await answered;
    await page.unroute(counted);
    expect(await clash.count()).toBe(0);
  }, 90_000);

  it("restored: back to the cloud, no banner, and every appointment and patient made meanwhile is in the cloud", async () => {
    await page.getByRole("button", { name: "Arrancar servidor de la clínica" }).click();
    await expectIndicator(page, "cloud", /^Conectado a la nube$/);
    await expect.poll(() => banner().count()).toBe(0);
    const reasons = Object.values(created);
    const inCloud = () =>
      cloudRows(
        demo,
        (sql) => sql<{ reason: string }[]>`select reason from appointments where reason in ${sql(reasons)}`,
      );
    await waitFor(
      "the appointments of every state in the cloud",
      async () => (await inCloud()).length === reasons.length,
      30_000,
    );
    expect((await inCloud()).map((r) => r.reason).sort()).toEqual([...reasons].sort());
    const patients = await cloudRows(
      demo,
      (sql) =>
        sql<
          { second_last_name: string }[]
        >`select second_last_name from patients where second_last_name in ${sql(registered)}`,
    );
    expect(patients.map((p) => p.second_last_name).sort()).toEqual([...registered].sort());
    for (const reason of reasons) {
      await expect
        .poll(() => page.getByTestId("agenda").textContent(), { timeout: 15_000 })
        .toContain(reason);
    }
    await screenshot(page, "4-de-vuelta-en-la-nube");
    await page.getByRole("button", { name: "Conflictos" }).click();
    await expect.poll(() => page.getByRole("main").textContent()).toMatch(/No hay conflictos abiertos/);
    await expectAccessible(page, "conflictos");
    await page.getByRole("button", { name: "Agenda" }).click();
  }, 90_000);

  it("signed in at the clinic server while the internet is cut (said in the header), working there; once it is back, a banner asks to sign in online", async () => {
    const { email, password, name } = demo.accounts.receptionist;
    await page.getByRole("button", { name: "Cortar internet" }).click();
    await expectIndicator(page, "server", /^Servidor local/);
    await page.getByRole("button", { name: "Cerrar sesión" }).click();
    await signInForm().waitFor();
    await signIn(page, email, password);
    await expect
      .poll(() => header().textContent(), { timeout: 15_000 })
      .toBe(`${name} · ${email} (en el servidor de la clínica)`);
    await expectIndicator(page, "server", /^Servidor local/);

    await page.getByRole("button", { name: "Restaurar internet" }).click();
    const online = page.getByTestId("online-sign-in-banner");
    await online.waitFor({ timeout: 20_000 });
    expect(await online.textContent()).toMatch(/^Vuelva a iniciar sesión para sincronizar con la nube/);
    await screenshot(page, "5-sesion-en-el-servidor");
    await online.getByRole("button", { name: "Iniciar sesión en línea" }).click();
    await signIn(page, email, password);
    await expect.poll(() => header().textContent()).toBe(`${name} · ${email}`);
    await expectIndicator(page, "cloud", /^Conectado a la nube/);
  });

  it("a patient's record opens from the search, and the clinic's administrator finds that opening in the bitácora", async () => {
    await page.getByTestId("patient-query").fill("nunez");
    await page.getByRole("button", { name: "Buscar", exact: true }).click();
    const open = page
      .getByTestId("patient-results")
      .getByRole("button", { name: /^Ver expediente de / })
      .first();
    const name = ((await open.getAttribute("aria-label")) ?? "").replace("Ver expediente de ", "");
    await open.click();
    const record = page.getByTestId("patient-record");
    await expect
      .poll(() => record.getByRole("heading", { level: 2 }).textContent())
      .toBe(`Expediente de ${name}`);
    await expect
      .poll(() => record.getByTestId("record-audit").textContent())
      .toBe("Esta consulta quedó registrada en la bitácora.");
    await expect.poll(() => record.getByRole("table").textContent()).toMatch(/Control de glaucoma/);
    // One action, one opening in the trail, however often the screen renders.
    const [counted] = await cloudRows(
      demo,
      (sql) => sql<{ opens: number }[]>`
        select count(*)::int as opens from cv_audit.events e join patients p on p.id = e.patient_id
        where e.action = 'open' and concat_ws(' ', p.first_name, p.last_name, p.second_last_name) = ${name}`,
    );
    expect(counted?.opens).toBe(1);
    // Reception keeps no trail: only an administrator is offered it.
    expect(await page.getByRole("button", { name: "Bitácora" }).count()).toBe(0);
    await screenshot(page, "6-expediente");

    await page.getByRole("button", { name: "Cerrar sesión" }).click();
    await signInForm().waitFor();
    const admin = demo.accounts.admin;
    await signIn(page, admin.email, admin.password);
    await expect.poll(() => header().textContent()).toBe(`${admin.name} · ${admin.email}`);
    await page.getByRole("button", { name: "Bitácora" }).click();
    const opening = page
      .getByTestId("audit-trail")
      .locator("tr", { hasText: "Consultó el expediente" })
      .filter({ hasText: name });
    await expect
      .poll(() => opening.first().textContent(), { timeout: 15_000 })
      .toContain(demo.accounts.receptionist.name);
    await screenshot(page, "7-bitacora");
  });

  it("a receptionist of one branch offline: the banner says what this PC could not copy, and stops once it could", async () => {
    const reason = `Revisión de catarata (${RUN})`;
    const { readmit } = await bookedAcrossBranches(demo, TOMORROW, reason);
    await page.getByRole("button", { name: "Cerrar sesión" }).click();
    await signInForm().waitFor();
    const { email, password, name } = demo.accounts.receptionist;
    await signIn(page, email, password);
    await expect.poll(() => header().textContent()).toBe(`${name} · ${email}`);
    const missing = async () =>
      (await call<ConnectionStatus>(demo, "get_connection_status")).body.notInCopy ?? {};
    await waitFor("a refresh of this PC's copy", async () => Object.keys(await missing()).length > 0);

    await page.getByRole("button", { name: "Cortar internet" }).click();
    await page.getByRole("button", { name: "Detener servidor de la clínica" }).click();
    await expectIndicator(page, "offline", /^Sin conexión/);
    await expect
      .poll(() => banner().textContent())
      .toMatch(
        /^Sin conexión: trabajando en este equipo — \d+ cambios? pendientes?; puede seguir trabajando\. No se pudieron copiar a este equipo 1 cita y 1 paciente: lo que se ve sin conexión puede estar incompleto\.$/,
      );
    await screenshot(page, "11-copia-incompleta", banner());

    await readmit();
    await page.getByRole("button", { name: "Arrancar servidor de la clínica" }).click();
    await page.getByRole("button", { name: "Restaurar internet" }).click();
    await expectIndicator(page, "cloud", /^Conectado a la nube/);
    await waitFor(
      "a refresh that places both",
      async () => Object.keys(await missing()).length === 0,
      30_000,
    );
    await desk.showDay(TOMORROW);
    await expect.poll(() => page.getByTestId("agenda").textContent(), { timeout: 15_000 }).toContain(reason);
  }, 120_000);

  it("signing out with an offline change is said first; the next person is told whose change waits here, until she signs in", async () => {
    await page.getByRole("button", { name: "Cortar internet" }).click();
    await page.getByRole("button", { name: "Detener servidor de la clínica" }).click();
    await expectIndicator(page, "offline", /^Sin conexión/);
    const reason = await desk.bookAtSlot("de otra persona", "17:00", doctors().emilio);
    await desk.expectBooked(reason, doctors().emilio);
    await page.getByRole("button", { name: "Cerrar sesión", exact: true }).click();
    const unsent = page.getByTestId("sign-out-unsent");
    await unsent.waitFor();
    await unsent.getByRole("button", { name: "Cerrar sesión de todos modos" }).click();
    await signInForm().waitFor();
    await page.getByRole("button", { name: "Arrancar servidor de la clínica" }).click();
    await page.getByRole("button", { name: "Restaurar internet" }).click();

    const admin = demo.accounts.admin;
    await signIn(page, admin.email, admin.password);
    await expect
      .poll(() => header().textContent(), { timeout: 15_000 })
      .toBe(`${admin.name} · ${admin.email}`);
    const waiting = page.getByTestId("others-unsent");
    await expect
      .poll(() => waiting.textContent(), { timeout: 30_000 })
      .toBe(
        `En este equipo espera 1 cambio de ${demo.accounts.receptionist.name} hecho sin conexión: se enviará cuando esa persona vuelva a iniciar sesión aquí.`,
      );
    await screenshot(page, "13-cambios-de-otra-persona", waiting);
    const inCloud = async () =>
      (await cloudRows(demo, (sql) => sql`select id from appointments where reason = ${reason}`)).length;
    expect(await inCloud()).toBe(0);

    await page.getByRole("button", { name: "Cerrar sesión", exact: true }).click();
    await signInForm().waitFor();
    const { email, password, name } = demo.accounts.receptionist;
    await signIn(page, email, password);
    await expect.poll(() => header().textContent(), { timeout: 15_000 }).toBe(`${name} · ${email}`);
    await waitFor("her change in the cloud", async () => (await inCloud()) === 1, 30_000);
    expect(await waiting.count()).toBe(0);
  }, 150_000);

  it("sign-out returns to the sign-in screen, and the agenda is gone", async () => {
    await page.getByRole("button", { name: "Cerrar sesión" }).click();
    await signInForm().waitFor();
    expect(await page.getByTestId("agenda").count()).toBe(0);
    expect(await header().count()).toBe(0);
  });
});
