#!/usr/bin/env node
// `npm run demo`: runs apps/desktop's demo from its TypeScript sources (no build step), passing
// signals through so Ctrl-C stops every embedded server.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const desktop = fileURLToPath(new URL("../apps/desktop/", import.meta.url));
const child = spawn(
  process.execPath,
  ["--conditions=@centrovision/source", "--import", "tsx", "src/demo/main.ts", ...process.argv.slice(2)],
  { cwd: desktop, stdio: "inherit" },
);
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => child.kill(signal));
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
