import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";

/** Debian's Chromium: the only browser these tests use. No browser is ever downloaded. */
export const CHROMIUM = process.env.CV_CHROMIUM ?? "/usr/bin/chromium";

export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--no-first-run",
];

/**
 * Makes sure Chromium is installed: as root it is installed from the OS packages
 * (`apt-get install chromium`); otherwise the error says what to run.
 */
export function ensureChromium(log: (line: string) => void = () => {}): string {
  if (existsSync(CHROMIUM)) return CHROMIUM;
  const root = process.getuid?.() === 0;
  const apt = existsSync("/usr/bin/apt-get");
  if (!root || !apt) {
    throw new Error(
      `[desktop e2e] Chromium is not installed at ${CHROMIUM}. Install it from your OS packages ` +
        `(Debian/Ubuntu: sudo apt-get install -y chromium) or point CV_CHROMIUM at a Chromium binary; ` +
        "these tests never download a browser.",
    );
  }
  log("[desktop e2e] installing Debian's chromium package (apt-get)…");
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  execFileSync("apt-get", ["update"], { stdio: "inherit", env });
  execFileSync("apt-get", ["install", "-y", "chromium"], {
    stdio: "inherit",
    env,
  });
  if (!existsSync(CHROMIUM))
    throw new Error(`[desktop e2e] apt-get installed chromium but ${CHROMIUM} is missing`);
  return CHROMIUM;
}
