// Runs a workspace's TypeScript entry point from source, so bins and the demo work on a fresh clone
// without a build: node is re-executed with tsx and the `@centrovision/source` export condition
// (tsx's tsconfig does not apply it to package exports), signals are forwarded so the child can
// finish its work, and the child's exit is this process's exit.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

/** `main`: a file URL or path of the .ts entry point; `cwd`: the child's working directory. */
export function runSource(main, { args = process.argv.slice(2), cwd } = {}) {
  const entry = main instanceof URL ? fileURLToPath(main) : main;
  // Resolved from here, not from the caller's working directory (which may have no node_modules).
  const tsx = import.meta.resolve("tsx");
  const child = spawn(
    process.execPath,
    ["--conditions=@centrovision/source", "--import", tsx, entry, ...args],
    {
      stdio: "inherit",
      ...(cwd && { cwd }),
    },
  );
  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"]) process.on(signal, () => child.kill(signal));
  child.on("exit", (code, signal) => {
    if (signal) process.kill(process.pid, signal);
    else process.exit(code ?? 1);
  });
  return child;
}
