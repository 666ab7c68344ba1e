#!/usr/bin/env node
// Runs the CLI from its TypeScript source, so `npx centrovision-sync` works on a fresh clone
// without a build. Re-executes node with the `@centrovision/source` export condition (tsx's
// tsconfig does not apply it to package exports) so workspace packages resolve to source too.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const main = fileURLToPath(new URL("../src/cli/main.ts", import.meta.url));
// Resolved from here, not from the caller's working directory (which has no node_modules).
const tsx = import.meta.resolve("tsx");
const child = spawn(
  process.execPath,
  ["--conditions=@centrovision/source", "--import", tsx, main, ...process.argv.slice(2)],
  { stdio: "inherit" },
);
// Forward stop signals: the child finishes its batch and exits on its own.
for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"]) process.on(signal, () => child.kill(signal));
child.on("exit", (code, signal) => {
  if (signal) process.kill(process.pid, signal);
  else process.exit(code ?? 1);
});
