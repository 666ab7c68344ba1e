import { copyFile, mkdir } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Demo, startDemo } from "../src/demo/demo-stack.js";
import { UI_DIR } from "../src/ui-bundle.js";
import { cloudRows, waitFor } from "../test/support.js";
import { CHROMIUM, CHROMIUM_ARGS } from "./chromium.js";

const ARTIFACTS = fileURLToPath(new URL("./artifacts/", import.meta.url));
const DOCS = fileURLToPath(new URL("../docs/", import.meta.url));
const RUN = Date.now().toString(36).toUpperCase();

let demo: Demo;
let browser: Browser;
let page: Page;
/** Reason text of each appointment created through the UI, by state. */
const created: Record<string, string> = {};

beforeAll(async () => {
  await mkdir(ARTIFACTS, { recursive: true });
  demo = await startDemo({ port: 0, uiDir: UI_DIR });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
  page = await browser.newPage({ viewport: { width: 1280, height: 860 }, locale: "es-MX" });
  await page.goto(demo.appUrl);
});

afterAll(async () => {
  await browser?.close();
  await demo?.stop();
});

const indicator = () => page.getByTestId("sync-indicator").getByRole("status");
const signInForm = () => page.getByTestId("sign-in-form");
const header = () => page.getByTestId("session-user");

/** Fills the sign-in screen as a person would, by its labels. */
async function signIn(email: string, password: string): Promise<void> {
  await signInForm().getByLabel("Correo electrónico").fill(email);
  await signInForm().getByLabel("Contraseña").fill(password);
  await signInForm().getByRole("button", { name: "Iniciar sesión", exact: true }).click();
}

/** Waits until the header's indicator shows `state` with a tooltip (and visible label) matching `tooltip`. */
async function expectIndicator(state: string, tooltip: RegExp): Promise<void> {
  await page.waitForSelector(`[data-testid="sync-indicator"] [role="status"][data-state="${state}"]`, {
    timeout: 20_000,
  });
  await expect
    .poll(async () => (await indicator().getAttribute("title")) ?? "", { timeout: 10_000 })
    .toMatch(tooltip);
  await expect.poll(() => indicator().textContent()).toMatch(tooltip);
}

async function screenshot(name: string): Promise<void> {
  const file = `${ARTIFACTS}${name}.png`;
  await page.screenshot({ path: file, fullPage: true });
  // CV_UPDATE_DOCS=1 refreshes the README's screenshots from this run.
  if (process.env.CV_UPDATE_DOCS === "1") {
    await mkdir(DOCS, { recursive: true });
    await copyFile(file, `${DOCS}${name}.png`);
  }
}

/** Books an appointment through the UI: search, pick the patient, fill the form, submit. */
async function book(state: string, time: string): Promise<void> {
  const reason = `Control de glaucoma (${state} ${RUN})`;
  await page.getByTestId("patient-query").fill("nunez");
  await page.getByRole("button", { name: "Buscar" }).click();
  await page.getByTestId("patient-results").getByRole("button").first().click();
  await page.getByTestId("selected-patient").waitFor();
  await page.getByTestId("appointment-time").fill(time);
  await page.getByTestId("appointment-reason").fill(reason);
  await page.getByRole("button", { name: "Agendar" }).click();
  await expect.poll(() => page.getByTestId("appointment-message").textContent()).toBe("Cita registrada.");
  await expect.poll(() => page.getByTestId("agenda").textContent()).toContain(reason);
  created[state] = reason;
}

describe("the four demo scenarios in a real browser", () => {
  it("sign-in: a wrong password is refused inline in Spanish; the receptionist's opens the agenda, her name in the header", async () => {
    await signInForm().waitFor();
    await screenshot("0-iniciar-sesion");
    const { email, password, name } = demo.accounts.receptionist;
    await signIn(email, "no-es-la-contraseña");
    await expect
      .poll(() => signInForm().getByRole("alert").textContent())
      .toBe("Correo o contraseña incorrectos.");
    expect(await signInForm().getByLabel("Contraseña").getAttribute("aria-invalid")).toBe("true");
    await signIn(email, password);
    await expect.poll(() => header().textContent()).toBe(`${name} · ${email}`);
    expect(await signInForm().count()).toBe(0);
    // The Núñez family of the seed are patients of the Sur branch.
    await page.getByTestId("branch").selectOption({ label: "CentroVision Sur" });
  });

  it("normal: cloud icon, 'Conectado a la nube'; bad input shows the backend's Spanish message", async () => {
    await expectIndicator("cloud", /^Conectado a la nube/);
    await page.getByTestId("patient-query").fill("a");
    await page.getByRole("button", { name: "Buscar" }).click();
    await expect.poll(() => page.getByRole("alert").first().textContent()).toMatch(/al menos 2 letras/);
    await book("nube", "18:00");
    const row = page.locator("tr", { hasText: created.nube ?? "" });
    await row.getByRole("button", { name: "Registrar llegada" }).click();
    await expect.poll(() => row.getByTestId("status").textContent()).toBe("En sala de espera");
    await screenshot("1-nube");
  });

  it("internet cut: server icon, 'Servidor local'", async () => {
    await page.getByRole("button", { name: "Cortar internet" }).click();
    await expectIndicator("server", /^Servidor local/);
    await book("servidor", "18:30");
    await screenshot("2-servidor-local");
  });

  it("clinic server stopped too: offline icon, 'Sin conexión (N pendientes)'", async () => {
    await page.getByRole("button", { name: "Detener servidor de la clínica" }).click();
    await expectIndicator("offline", /^Sin conexión/);
    await book("sin-conexion", "19:00");
    await expectIndicator("offline", /^Sin conexión \(\d+ pendientes?\)$/);
    await screenshot("3-sin-conexion");
  });

  it("restored: back to the cloud, and every appointment made meanwhile is in the cloud", async () => {
    await page.getByRole("button", { name: "Arrancar servidor de la clínica" }).click();
    await page.getByRole("button", { name: "Restaurar internet" }).click();
    await expectIndicator("cloud", /^Conectado a la nube$/);
    const reasons = Object.values(created);
    await waitFor(
      "the appointments of every state in the cloud",
      async () => {
        const rows = await cloudRows(
          demo,
          (sql) => sql`select reason from appointments where reason in ${sql(reasons)}`,
        );
        return rows.length === reasons.length;
      },
      30_000,
    );
    const rows = await cloudRows(
      demo,
      (sql) => sql`select reason from appointments where reason in ${sql(reasons)}`,
    );
    expect(rows.map((r) => r.reason).sort()).toEqual([...reasons].sort());
    // The agenda re-reads every 5 s; on the cloud it shows what was booked in every state.
    for (const reason of reasons) {
      await expect
        .poll(() => page.getByTestId("agenda").textContent(), { timeout: 15_000 })
        .toContain(reason);
    }
    await screenshot("4-de-vuelta-en-la-nube");
    await page.getByRole("button", { name: "Conflictos" }).click();
    await expect.poll(() => page.getByRole("main").textContent()).toMatch(/No hay conflictos abiertos/);
  });

  it("signed in at the clinic server while the internet is cut (said in the header), working there; once it is back, a banner asks to sign in online", async () => {
    const { email, password, name } = demo.accounts.receptionist;
    await page.getByRole("button", { name: "Cortar internet" }).click();
    await expectIndicator("server", /^Servidor local/);
    await page.getByRole("button", { name: "Cerrar sesión" }).click();
    await signInForm().waitFor();
    await signIn(email, password);
    await expect
      .poll(() => header().textContent(), { timeout: 15_000 })
      .toBe(`${name} · ${email} (en el servidor de la clínica)`);
    await expectIndicator("server", /^Servidor local/);

    await page.getByRole("button", { name: "Restaurar internet" }).click();
    const banner = page.getByTestId("online-sign-in-banner");
    await banner.waitFor({ timeout: 20_000 });
    expect(await banner.textContent()).toMatch(/^Vuelva a iniciar sesión para sincronizar con la nube/);
    await screenshot("5-sesion-en-el-servidor");
    await banner.getByRole("button", { name: "Iniciar sesión en línea" }).click();
    await signIn(email, password);
    await expect.poll(() => header().textContent()).toBe(`${name} · ${email}`);
    await expectIndicator("cloud", /^Conectado a la nube/);
  });

  it("a patient's record opens from the search, and the clinic's administrator finds that opening in the bitácora", async () => {
    await page.getByTestId("branch").selectOption({ label: "CentroVision Sur" });
    await page.getByTestId("patient-query").fill("nunez");
    await page.getByRole("button", { name: "Buscar" }).click();
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
    await screenshot("6-expediente");

    await page.getByRole("button", { name: "Cerrar sesión" }).click();
    await signInForm().waitFor();
    const admin = demo.accounts.admin;
    await signIn(admin.email, admin.password);
    await expect.poll(() => header().textContent()).toBe(`${admin.name} · ${admin.email}`);
    await page.getByRole("button", { name: "Bitácora" }).click();
    const opening = page
      .getByTestId("audit-trail")
      .locator("tr", { hasText: "Consultó el expediente" })
      .filter({ hasText: name });
    await expect
      .poll(() => opening.first().textContent(), { timeout: 15_000 })
      .toContain(demo.accounts.receptionist.name);
    await screenshot("7-bitacora");
  });

  it("sign-out returns to the sign-in screen, and the agenda is gone", async () => {
    await page.getByRole("button", { name: "Cerrar sesión" }).click();
    await signInForm().waitFor();
    expect(await page.getByTestId("agenda").count()).toBe(0);
    expect(await header().count()).toBe(0);
  });
});
