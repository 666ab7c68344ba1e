import { spawn } from "node:child_process";
import { once } from "node:events";
import { readdir, stat } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
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
  // In a process of its own with NODE_ENV=production: run from a test (NODE_ENV=test), an
  // in-process build would ship React's development build, with every source file's absolute path.
  const vite = join(dirname(createRequire(import.meta.url).resolve("vite/package.json")), "bin", "vite.js");
  const { NODE_OPTIONS: _, ...env } = process.env;
  const child = spawn(process.execPath, [vite, "build", "--logLevel", "warn"], {
    cwd: APP_DIR,
    env: { ...env, NODE_ENV: "production" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  for (const stream of [child.stdout, child.stderr]) stream.on("data", (chunk) => (output += chunk));
  const [code] = await once(child, "exit");
  if (code !== 0) throw new Error(`[desktop] vite build failed (exit code ${code}):\n${output}`);
  return UI_DIR;
}
