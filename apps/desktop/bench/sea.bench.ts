import { mkdir, mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, reportFigure } from "@centrovision/testkit";
import { buildDesktopExecutable } from "../scripts/build-sea.js";
import { startSidecar } from "../sea/sidecar.js";
import { ensureUiBuilt } from "../src/ui-bundle.js";

/**
 * The single executable (`npm run package`): how long it takes to build, its size against the Node
 * binary it is made of, and the time from spawn to a `get_connection_status` answered, p50 of starts
 * alternated with the same bundle run by `node` (the same-run reference: what the executable adds or
 * saves is its own start-up, the blob's code cache and the unpacked files' check). The config points
 * at a cloud that is not there, as at a PC started offline; nothing else runs.
 */
const work = await mkdtemp(join(tmpdir(), "cv-sea-bench-"));
try {
  // The UI's vite build, when its sources changed, is not what this figure is about.
  await ensureUiBuilt();
  const started = performance.now();
  const { executable, bundle } = await buildDesktopExecutable({
    outDir: join(work, "app"),
    workDir: join(work, "build"),
  });
  reportFigure({
    figure: "build: bundle, blob, inject",
    unit: "s",
    measured: (performance.now() - started) / 1000,
  });
  const size = (await stat(executable)).size / 1e6;
  const node = (await stat(process.execPath)).size / 1e6;
  reportFigure({
    figure: "executable size",
    unit: "MB",
    measured: size,
    reference: { label: "the node binary", value: node },
    ratio: size / node,
  });

  const pc = join(work, "pc");
  await mkdir(join(pc, "datos"), { recursive: true, mode: 0o700 });
  await writeFile(
    join(pc, "config.toml"),
    [
      `branch_id = "${crypto.randomUUID()}"`,
      "[supabase]",
      `url = "http://127.0.0.1:${await freePort()}"`,
      'anon_key = "no-cloud"',
      "[sqlite]",
      'path = "datos/clinica.cvdb"',
      'key_file = "local.key"',
      'keychain = "off"',
      "[server]",
      "port = 0",
      "",
    ].join("\n"),
    { mode: 0o600 },
  );
  const { NODE_OPTIONS: _, ...inherited } = process.env;
  const env = { ...inherited, XDG_CACHE_HOME: join(work, "cache") };
  const answered = async (command: string, args: readonly string[]) => {
    const sidecar = await startSidecar(command, [...args, "--config", "config.toml"], { cwd: pc, env });
    const { status } = await sidecar.invoke("get_connection_status");
    if (status !== 200) throw new Error(`get_connection_status answered ${status}: ${sidecar.stderr()}`);
    return sidecar;
  };
  /** Spawn → answered, in ms; the stop that follows (the next start needs the database closed) is not timed. */
  const startTime = async (command: string, args: readonly string[]) => {
    const begun = performance.now();
    const sidecar = await answered(command, args);
    const elapsed = performance.now() - begun;
    await sidecar.stop();
    return elapsed;
  };

  reportFigure({
    figure: "first start (unpacks the UI and sql.js's wasm)",
    unit: "ms",
    measured: await startTime(executable, []),
  });
  // Alternated, so both meet the same machine load; the first two rounds warm the disk cache.
  const times: [number[], number[]] = [[], []];
  const rounds = 10;
  const warmup = 2;
  for (let round = 0; round < warmup + rounds; round++) {
    for (const side of round % 2 === 0 ? [0, 1] : [1, 0]) {
      const ms = await (side === 0 ? startTime(executable, []) : startTime(process.execPath, [bundle]));
      if (round >= warmup) times[side]?.push(ms);
    }
  }
  const [sea, plain] = times.map((list) => list.sort((a, b) => a - b)) as [number[], number[]];
  const at = (sorted: number[], p: number) => sorted[Math.floor(p * sorted.length)] ?? Number.NaN;
  reportFigure({
    figure: "spawn → get_connection_status answered, p50",
    unit: "ms",
    measured: at(sea, 0.5),
    reference: { label: "node backend.cjs", value: at(plain, 0.5) },
    ratio: at(sea, 0.5) / at(plain, 0.5),
  });
  console.log(`  p95 ${at(sea, 0.95).toFixed(0)} ms vs ${at(plain, 0.95).toFixed(0)} ms`);
} finally {
  await rm(work, { recursive: true, force: true });
}
