import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const APP_DIR = fileURLToPath(new URL("../", import.meta.url));
/** Where `vite build` puts the UI; gitignored (`dist/`). */
export const UI_DIR = join(APP_DIR, "dist", "ui");
const SOURCES = [
  join(APP_DIR, "src", "ui"),
  join(APP_DIR, "vite.config.ts"),
  fileURLToPath(new URL("../../../packages/ui-react/src", import.meta.url)),
];

async function newestChange(path: string): Promise<number> {
  const info = await stat(path).catch(() => null);
  if (info === null) return 0;
  if (!info.isDirectory()) return info.mtimeMs;
  const entries = await readdir(path);
  const times = await Promise.all(entries.map((entry) => newestChange(join(path, entry))));
  return Math.max(info.mtimeMs, ...times);
}

/**
 * Builds the UI with Vite unless the bundle is newer than every source it comes from: a fresh
 * clone builds once (a few seconds), later runs start at once. A built bundle served by the
 * backend keeps the browser on one origin and needs no dev server process.
 */
export async function ensureUiBuilt(log: (line: string) => void = () => {}): Promise<string> {
  const built = await stat(join(UI_DIR, "index.html")).then(
    (s) => s.mtimeMs,
    () => 0,
  );
  const sources = Math.max(...(await Promise.all(SOURCES.map(newestChange))));
  if (built > sources) return UI_DIR;
  log("compilando la interfaz (vite build)…");
  const { build } = await import("vite");
  await build({ configFile: join(APP_DIR, "vite.config.ts"), logLevel: "warn" });
  return UI_DIR;
}
