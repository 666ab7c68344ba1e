import { parseArgs } from "node:util";
import { buildDesktopExecutable } from "./build-sea.js";

/**
 * `npm run package -w @centrovision/desktop [-- --out <dir>] [--work <dir>]`: the desktop backend as
 * one executable for this machine, in `dist/packages/` at the repo root unless `--out` says where.
 */
const { values } = parseArgs({ options: { out: { type: "string" }, work: { type: "string" } } });
const started = performance.now();
const { executable } = await buildDesktopExecutable({
  ...(values.out !== undefined && { outDir: values.out }),
  ...(values.work !== undefined && { workDir: values.work }),
  log: (line) => console.log(`[desktop] ${line}`),
});
console.log(`[desktop] ${executable} (${((performance.now() - started) / 1000).toFixed(1)} s)`);
