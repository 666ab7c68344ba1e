import type { Page } from "playwright-core";
import { expect } from "vitest";
import { addDays, dayHeading, todayIn } from "../src/ui/types.js";

export const RUN = Date.now().toString(36).toUpperCase();
/** Letters only, for names: a patient's name takes no digits. */
export const TAG = RUN.replace(/\d/g, (d) => "ABCDEFGHIJ"[Number(d)] ?? "X");
export const ZONE = "America/Mexico_City";
export const TODAY = todayIn(ZONE);
/** Bookings go on tomorrow: a time today may already be past when the suite runs. */
export const TOMORROW = addDays(TODAY, 1);

/**
 * Whether the agenda was read right when the mode became `mode`: within 500 ms, where its own
 * refresh comes every 5 s (a refresh may coincide; a missing re-read fails most runs).
 */
export function readAtSwitch(
  calls: number[],
  changes: { mode: string; at: number }[],
  mode: string,
): boolean {
  const switched = changes.find((c) => c.mode === mode)?.at ?? Number.NaN;
  return calls.some((at) => at >= switched - 50 && at - switched < 500);
}

/** What a receptionist does at the front desk, step by step, by labels and accessible names. */
export function deskSteps(page: Page) {
  const heading = () => page.getByTestId("agenda-heading");
  const column = (name: string) =>
    page.getByTestId("agenda-column").filter({ has: page.getByRole("heading", { name, exact: true }) });

  /** Goes to a day with the day buttons and waits until its grid has answered. */
  async function showDay(date: string): Promise<void> {
    for (let guard = 0; guard < 3 && (await page.getByTestId("date").inputValue()) !== date; guard += 1) {
      const shown = await page.getByTestId("date").inputValue();
      if (date === TODAY) await page.getByRole("button", { name: "Hoy" }).click();
      else await page.getByRole("button", { name: date > shown ? "Día siguiente" : "Día anterior" }).click();
    }
    await expect.poll(() => heading().textContent()).toContain(dayHeading(date, ZONE));
    await page.getByTestId("agenda").waitFor();
  }

  /** Searches, and picks the first patient found. Returns their name. */
  async function pickPatient(query: string): Promise<string> {
    await page.getByTestId("patient-query").fill(query);
    await page.getByRole("button", { name: "Buscar", exact: true }).click();
    const first = page.getByTestId("patient-results").locator("button.result").first();
    const name = (await first.locator("strong").textContent()) ?? "";
    await first.click();
    await expect.poll(() => page.getByTestId("selected-patient").textContent()).toContain(name);
    return name;
  }

  /** Books through a click on an empty slot of the grid; returns the reason written. */
  async function bookAtSlot(state: string, time: string, doctor: string | null, patientQuery = "nunez") {
    const reason = `Control de glaucoma (${state} ${RUN})`;
    const slot =
      doctor === null ? `Agendar a las ${time} sin médico asignado` : `Agendar a las ${time} con ${doctor}`;
    await page.getByRole("button", { name: slot, exact: true }).click();
    const form = page.getByTestId("appointment-form");
    // The form takes the slot in an effect after the click's render: wait for it, never read once.
    await expect.poll(() => form.getByLabel("Hora").inputValue()).toBe(time);
    const doctorField = form.getByLabel("Médico");
    await expect
      .poll(() => doctorField.locator("option:checked").textContent())
      .toBe(doctor ?? "Sin médico asignado");
    if (patientQuery !== "") await pickPatient(patientQuery);
    await form.getByLabel("Consultorio").selectOption({ label: "Consultorio 1" });
    await form.getByLabel("Motivo").fill(reason);
    await form.getByRole("button", { name: "Agendar cita" }).click();
    return reason;
  }

  async function expectBooked(reason: string, doctor: string | null): Promise<void> {
    await expect
      .poll(() => page.getByTestId("appointment-message").textContent(), { timeout: 15_000 })
      .toMatch(/^Cita registrada: /);
    const block = column(doctor ?? "Sin médico asignado")
      .getByTestId("appointment")
      .filter({ hasText: reason });
    await expect.poll(() => block.count(), { timeout: 15_000 }).toBe(1);
    expect(await block.textContent()).toContain("Consultorio 1");
  }

  /** The registration form, reached from a search that finds nobody. */
  async function openRegistration(suffix: string): Promise<void> {
    await page.getByTestId("patient-query").fill(`Quintanilla ${TAG}${suffix}`);
    await page.getByRole("button", { name: "Buscar", exact: true }).click();
    await page.getByTestId("no-results").waitFor();
    await page.getByRole("button", { name: "Registrar paciente nuevo" }).click();
    await page.getByTestId("patient-form").waitFor();
  }

  /** Fills the registration form with a valid patient; returns the full name and the (unique) second surname. */
  async function registerPatient(suffix: string): Promise<{ name: string; second: string }> {
    const form = page.getByTestId("patient-form");
    const second = `${TAG}${suffix}`.toLowerCase().replace(/^./, (c) => c.toUpperCase());
    await form.getByLabel("Nombre(s)").fill("Zacarías");
    await form.getByLabel("Primer apellido").fill("Quintanilla");
    await form.getByLabel("Segundo apellido").fill(second);
    await form.getByLabel("Fecha de nacimiento").fill("1985-03-14");
    await form.getByLabel("Sexo").selectOption("male");
    await form.getByLabel("Teléfono").fill("55 1234 5678");
    await form.getByLabel("Correo electrónico").fill("");
    await form.getByRole("button", { name: "Registrar paciente" }).click();
    const name = `Zacarías Quintanilla ${second}`;
    await expect
      .poll(() => page.getByTestId("patient-registered").textContent(), { timeout: 15_000 })
      .toBe(`Paciente registrado: ${name}. Quedó seleccionado para la cita.`);
    await expect.poll(() => page.getByTestId("selected-patient").textContent()).toContain(name);
    return { name, second };
  }

  return {
    heading,
    column,
    showDay,
    pickPatient,
    bookAtSlot,
    expectBooked,
    openRegistration,
    registerPatient,
  };
}
