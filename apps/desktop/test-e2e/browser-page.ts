import { readFileSync } from "node:fs";
import { copyFile, mkdir } from "node:fs/promises";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import type AxeCore from "axe-core";
import type { Locator, Page } from "playwright-core";
import { expect } from "vitest";

const ARTIFACTS = fileURLToPath(new URL("./artifacts/", import.meta.url));
const DOCS = fileURLToPath(new URL("../docs/", import.meta.url));
const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

/** Fills the sign-in screen as a person would, by its labels. */
export async function signIn(page: Page, email: string, password: string): Promise<void> {
  const form = page.getByTestId("sign-in-form");
  await form.getByLabel("Correo electrónico").fill(email);
  await form.getByLabel("Contraseña").fill(password);
  await form.getByRole("button", { name: "Iniciar sesión", exact: true }).click();
}

/** Waits until the header's indicator shows `state` with a tooltip (and visible label) matching `tooltip`. */
export async function expectIndicator(page: Page, state: string, tooltip: RegExp): Promise<void> {
  const indicator = page.getByTestId("sync-indicator").getByRole("status");
  await page.waitForSelector(`[data-testid="sync-indicator"] [role="status"][data-state="${state}"]`, {
    timeout: 20_000,
  });
  await expect
    .poll(async () => (await indicator.getAttribute("title")) ?? "", { timeout: 10_000 })
    .toMatch(tooltip);
  await expect.poll(() => indicator.textContent()).toMatch(tooltip);
}

/**
 * A full-page screenshot in artifacts/ (or the top of the page down to `until`); with
 * CV_UPDATE_DOCS=1 also the README's copy in docs/.
 */
export async function screenshot(page: Page, name: string, until?: Locator): Promise<void> {
  await mkdir(ARTIFACTS, { recursive: true });
  const file = `${ARTIFACTS}${name}.png`;
  // The pointer rests off the page, so no slot is shown highlighted by a hover.
  await page.mouse.move(0, 0);
  await page.evaluate(() => window.scrollTo(0, 0));
  const box = until === undefined ? null : await until.boundingBox();
  await page.screenshot({
    path: file,
    fullPage: true,
    ...(box !== null && {
      clip: {
        x: 0,
        y: 0,
        width: page.viewportSize()?.width ?? 1280,
        height: Math.ceil(box.y + box.height + 12),
      },
    }),
  });
  if (process.env.CV_UPDATE_DOCS === "1") {
    await mkdir(DOCS, { recursive: true });
    await copyFile(file, `${DOCS}${name}.png`);
  }
}

export interface AxeFinding {
  readonly id: string;
  readonly impact: string | null;
  readonly help: string;
  readonly targets: string[];
}

/** Every finding of the last `expectAccessible` per view, for the run's summary. */
export const axeLog: Record<string, AxeFinding[]> = {};

/**
 * Runs axe-core (WCAG 2.x A and AA rules and best practices, as axe ships them) on the page as it
 * is now, and fails on any serious or critical violation, naming the rule and the elements. Minor
 * and moderate findings are kept in {@link axeLog}.
 */
export async function expectAccessible(page: Page, view: string): Promise<AxeFinding[]> {
  if (!(await page.evaluate(() => "axe" in window))) await page.addScriptTag({ content: AXE_SOURCE });
  const findings = await page.evaluate(async () => {
    const axe = (window as unknown as { axe: typeof AxeCore }).axe;
    const result = await axe.run(document, { resultTypes: ["violations"] });
    return result.violations.map((v) => ({
      id: v.id,
      impact: v.impact ?? null,
      help: v.help,
      targets: v.nodes.slice(0, 5).map((n) => n.target.join(" ")),
    }));
  });
  axeLog[view] = findings;
  const blocking = findings.filter((f) => f.impact === "serious" || f.impact === "critical");
  expect(blocking, `${view}: ${JSON.stringify(blocking, null, 2)}`).toEqual([]);
  return findings;
}

/**
 * Records, in the page, every heading the agenda shows with the appointment ids under it at that
 * moment, and the time of every `get_appointments` call and of every change of mode (as the
 * developer panel words it, from the same status the agenda follows): what the "no stale rows"
 * and "reloads on a mode change" checks read back.
 */
export async function watchAgenda(page: Page): Promise<void> {
  await page.evaluate(() => {
    const w = window as unknown as {
      agendaFrames: { heading: string; ids: string[] }[];
      agendaCalls: number[];
      modeChanges: { mode: string; at: number }[];
      agendaWatched?: boolean;
    };
    w.agendaFrames = [];
    w.agendaCalls = [];
    w.modeChanges = [];
    if (w.agendaWatched) return;
    w.agendaWatched = true;
    const frame = () => {
      const heading = document.querySelector('[data-testid="agenda-heading"]')?.textContent ?? "";
      const ids = [...document.querySelectorAll('[data-testid="agenda"] [data-appointment-id]')].map(
        (el) => el.getAttribute("data-appointment-id") ?? "",
      );
      w.agendaFrames.push({ heading, ids });
    };
    new MutationObserver(frame).observe(document.body, {
      subtree: true,
      childList: true,
      characterData: true,
    });
    const modeNow = () =>
      /Modo: ([^·]+)/
        .exec(document.querySelector('[data-testid="dev-state"]')?.textContent ?? "")?.[1]
        ?.trim();
    let mode = modeNow();
    new MutationObserver(() => {
      const now = modeNow();
      if (now !== mode && now !== undefined) w.modeChanges.push({ mode: now, at: Date.now() });
      mode = now;
    }).observe(document.body, { subtree: true, childList: true, characterData: true });
    const original = window.fetch.bind(window);
    window.fetch = (input, init) => {
      if (String(input).includes("get_appointments")) w.agendaCalls.push(Date.now());
      return original(input, init);
    };
  });
}

export interface AgendaWatch {
  frames: { heading: string; ids: string[] }[];
  calls: number[];
  modeChanges: { mode: string; at: number }[];
}

export const readAgendaWatch = (page: Page): Promise<AgendaWatch> =>
  page.evaluate(() => {
    const w = window as unknown as {
      agendaFrames: AgendaWatch["frames"];
      agendaCalls: number[];
      modeChanges: AgendaWatch["modeChanges"];
    };
    return { frames: w.agendaFrames, calls: w.agendaCalls, modeChanges: w.modeChanges };
  });
