#!/usr/bin/env node
// Runs the built CLI (dist/cli.js, `npm run build -w centrovision-sync`) when it is there and
// newer than every source file it was built from; otherwise runs it from its TypeScript source,
// so `npx centrovision-sync` works on a fresh clone without a build (and a stale build never runs).
// CENTROVISION_SYNC_FROM_SOURCE=1 runs the source even when built (developing the daemon).
import { existsSync, readdirSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";

const built = new URL("../dist/cli.js", import.meta.url);

/** The newest modification time under `dir` (0 when it does not exist). */
function newest(dir) {
  if (!existsSync(dir)) return 0;
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) latest = Math.max(latest, statSync(`${entry.parentPath}/${entry.name}`).mtimeMs);
  }
  return latest;
}

function sourcesNewerThan(time) {
  const packages = fileURLToPath(new URL("../../../packages/", import.meta.url));
  const dirs = [fileURLToPath(new URL("../src/", import.meta.url))];
  if (existsSync(packages)) {
    for (const name of readdirSync(packages)) dirs.push(`${packages}${name}/src`);
  }
  return dirs.some((dir) => newest(dir) > time);
}

const fresh =
  process.env.CENTROVISION_SYNC_FROM_SOURCE !== "1" &&
  existsSync(built) &&
  !sourcesNewerThan(statSync(built).mtimeMs);
if (fresh) {
  await import(built.href);
} else {
  if (existsSync(built) && process.env.CENTROVISION_SYNC_FROM_SOURCE !== "1") {
    process.stderr.write(
      "centrovision-sync: dist/ is older than the source; running from source (npm run build -w centrovision-sync)\n",
    );
  }
  const { runSource } = await import("../../../scripts/run-source.mjs");
  runSource(new URL("../src/cli/main.ts", import.meta.url));
}
