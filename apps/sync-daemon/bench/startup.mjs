// Start-up time of the CLI, from the bin to its exit, measured in one run on this machine: built
// (dist/, `npm run build`) against from its TypeScript source (what a fresh clone runs), for
// `--help` and `config check`. Goal: ≤ 300 ms built. It runs under tsx only to import reportFigure
// from the testkit's TypeScript source; the CLI it times runs in child processes without that loader.
//
//   npm run bench -w centrovision-sync
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { reportFigure } from "@centrovision/testkit";

const RUNS = Number(process.env.CV_BENCH_RUNS ?? 15);
const GOAL_MS = 300;
const here = fileURLToPath(new URL("..", import.meta.url));
const bin = join(here, "bin/centrovision-sync.mjs");

execFileSync("npx", ["tsup"], { cwd: here, stdio: "ignore" });

const dir = mkdtempSync(join(tmpdir(), "cv-startup-"));
chmodSync(dir, 0o700);
const secret = (name) => {
  writeFileSync(join(dir, name), "bench-password\n", { mode: 0o600 });
  return name;
};
const config = join(dir, "sync.toml");
writeFileSync(
  config,
  [
    "[node]",
    'name = "clinic-bench"',
    "[cloud]",
    'url = "https://example.supabase.co"',
    'anon_key = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYW5vbiJ9.bench"',
    'node_email = "node@example.mx"',
    `node_password_file = "${secret("node_password")}"`,
    "[clinic]",
    'url = "postgres://cv_daemon@127.0.0.1:5432/centrovision"',
    `password_file = "${secret("db_password")}"`,
  ].join("\n"),
  { mode: 0o600 },
);

function measure(args, fromSource) {
  const env = { ...process.env, CENTROVISION_SYNC_FROM_SOURCE: fromSource ? "1" : "0" };
  const times = [];
  for (let run = 0; run < RUNS; run++) {
    const started = performance.now();
    const result = spawnSync(process.execPath, [bin, ...args], { env, encoding: "utf8" });
    times.push(performance.now() - started);
    if (result.status !== 0) throw new Error(`${args.join(" ")} exited ${result.status}: ${result.stderr}`);
  }
  times.sort((a, b) => a - b);
  return { p50: times[Math.floor(RUNS / 2)], p95: times[Math.min(RUNS - 1, Math.floor(RUNS * 0.95))] };
}

try {
  process.stdout.write(`CLI start to exit, ${RUNS} runs each\n`);
  for (const args of [["--help"], ["--config", config, "config", "check"]]) {
    const built = measure(args, false);
    const source = measure(args, true);
    reportFigure({
      figure: `${args.includes("check") ? "config check" : "--help"}, start to exit, built, p50`,
      unit: "ms",
      measured: built.p50,
      reference: { label: "from source", value: source.p50 },
      ratio: source.p50 / built.p50,
      goal: { of: "measured", atMost: GOAL_MS },
    });
    process.stdout.write(`  p95 ${built.p95.toFixed(0)} ms built, ${source.p95.toFixed(0)} ms from source\n`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
