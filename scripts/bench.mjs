// `npm run bench [-- --long --filter=<package>]`: every package's bench (or the filtered ones),
// one package at a time (turbo), then one table of every figure they reported with `reportFigure`
// (@centrovision/testkit), also written to bench-results.json. Without --long, the parts of benches
// that take minutes run in a short form (each says so in a "short form:" line, listed again under
// the table). A missed goal is a finding, not a failure: the command fails only when a bench
// crashes, naming its package.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
/**
 * A line a bench prints when it runs a part in its short form (longOrShort in the testkit, or a
 * package's bench script), after turbo's "<package>:bench: " prefix. Anchored at the line's start:
 * npm echoes a package's script before running it, and that echo quotes the words too.
 */
const SHORT_FORM = /^(?:(\S+):bench: )?short form: (.*)$/;

const args = process.argv.slice(2);
const filters = args.filter((arg) => arg.startsWith("--filter="));
const unknown = args.filter((arg) => arg !== "--long" && !filters.includes(arg));
if (unknown.length > 0) {
  console.error(
    `[bench] unknown argument ${unknown.join(" ")}: the flags are --long (every part in full) and ` +
      "--filter=<package> (that package's bench only; turbo's filter syntax, repeatable)",
  );
  process.exit(2);
}
const long = args.includes("--long") || process.env.CV_BENCH_LONG === "1";

const scratch = mkdtempSync(join(tmpdir(), "cv-bench-"));
const resultsFile = join(scratch, "figures.jsonl");
writeFileSync(resultsFile, "");
// turbo --summarize writes one file per run here; ours is the one that was not there before.
const runsDir = join(root, ".turbo", "runs");
const earlierRuns = new Set(existsSync(runsDir) ? readdirSync(runsDir) : []);
const startedAt = new Date();

/** Runs turbo, echoing its output, and returns its exit code and every "short form:" line with its package. */
function runTurbo() {
  const child = spawn(
    join(root, "node_modules", ".bin", "turbo"),
    ["run", "bench", "--concurrency=1", "--continue", "--summarize", ...filters],
    {
      cwd: root,
      stdio: ["inherit", "pipe", "inherit"],
      env: {
        ...process.env,
        TURBO_TELEMETRY_DISABLED: "1",
        CV_BENCH_RESULTS: resultsFile,
        ...(long && { CV_BENCH_LONG: "1" }),
      },
    },
  );
  const shortened = [];
  let pending = "";
  const scan = (line) => {
    const found = SHORT_FORM.exec(line);
    if (found) shortened.push({ package: found[1] ?? null, note: found[2] });
  };
  child.stdout.on("data", (chunk) => {
    process.stdout.write(chunk);
    const lines = (pending + chunk.toString()).split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines) scan(line);
  });
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code, signal) => {
      scan(pending);
      resolve({ code: code ?? (signal ? 1 : 0), shortened });
    });
  });
}

/** The packages whose bench exited non-zero, from turbo's run summary (then removed). */
function failedPackages() {
  const ours = existsSync(runsDir) ? readdirSync(runsDir).filter((name) => !earlierRuns.has(name)) : [];
  const failed = [];
  for (const name of ours) {
    const summary = JSON.parse(readFileSync(join(runsDir, name), "utf8"));
    for (const task of summary.tasks ?? []) {
      // Packages without a bench script are listed too (command "<NONEXISTENT>"), never run.
      if (task.command !== "<NONEXISTENT>" && task.execution?.exitCode !== 0) failed.push(task.package);
    }
    rmSync(join(runsDir, name));
  }
  return { failed, summarized: ours.length > 0 };
}

function readFigures() {
  const figures = [];
  for (const line of readFileSync(resultsFile, "utf8").split("\n")) {
    if (line.trim() === "") continue;
    try {
      figures.push(JSON.parse(line));
    } catch {
      console.error(
        `[bench] skipped a line of ${resultsFile} that is not JSON (a bench killed while writing?): ${line}`,
      );
    }
  }
  return figures;
}

/** As reportFigure picks the digits (packages/testkit/src/bench.ts): more while a value would print as a bound it is not. */
function digitsBeside(value, digits, bounds) {
  let shown = digits;
  while (
    shown < 6 &&
    bounds.some((b) => typeof b === "number" && b !== value && b.toFixed(shown) === value.toFixed(shown))
  )
    shown++;
  return shown;
}

/** As reportFigure prints a number: 3 significant digits or whole. */
function amount(value, unit, bounds = []) {
  // JSON has no NaN: a figure that measured nothing comes back as null.
  if (typeof value !== "number") return `NaN ${unit}`;
  const size = Math.abs(value);
  const significant = size >= 100 || size === 0 ? 0 : Math.min(6, 2 - Math.floor(Math.log10(size)));
  const digits = digitsBeside(value, significant, bounds);
  const text = value.toLocaleString("en", { minimumFractionDigits: digits, maximumFractionDigits: digits });
  return unit === "×" ? `${text}×` : `${text} ${unit}`;
}

/** As reportFigure prints a ratio. */
const times = (ratio, bounds = []) =>
  typeof ratio === "number" ? `${ratio.toFixed(digitsBeside(ratio, 2, bounds))}×` : "NaN×";

/** The goal's bounds when the goal is of `of` ("measured" or "ratio"). */
const boundsOf = (figure, of) => (figure.goal?.of === of ? [figure.goal.atLeast, figure.goal.atMost] : []);

function goalText(figure) {
  const { goal } = figure;
  if (goal === undefined) return "";
  const show = (bound) => (goal.of === "ratio" ? times(bound) : amount(bound, figure.unit));
  const bounds = [
    goal.atLeast === undefined ? "" : `≥ ${show(goal.atLeast)}`,
    goal.atMost === undefined ? "" : `≤ ${show(goal.atMost)}`,
  ].filter(Boolean);
  return `${goal.of === "ratio" ? "ratio " : ""}${bounds.join(", ")}`;
}

function printTable(figures) {
  const header = ["bench", "figure", "measured", "reference", "reference is", "ratio", "goal", "met"];
  const rows = figures.map((f) => [
    f.bench.replace(/^@centrovision\//, "").replace(/\.bench\.ts$|\.mjs$/, ""),
    f.figure,
    amount(f.measured, f.unit, boundsOf(f, "measured")),
    f.reference === undefined ? "" : amount(f.reference.value, f.unit),
    f.reference?.label ?? "",
    f.ratio === undefined ? "" : times(f.ratio, boundsOf(f, "ratio")),
    goalText(f),
    f.met === null ? "" : f.met ? "met" : "MISSED",
  ]);
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => row[column].length)),
  );
  const rightAligned = new Set([2, 3, 5]);
  const format = (row) =>
    row
      .map((cell, column) =>
        rightAligned.has(column) ? cell.padStart(widths[column]) : cell.padEnd(widths[column]),
      )
      .join("  ")
      .trimEnd();
  console.log(`\n${format(header)}\n${widths.map((width) => "-".repeat(width)).join("  ")}`);
  for (const row of rows) console.log(format(row));
}

let turbo;
try {
  turbo = await runTurbo();
} catch (error) {
  turbo = { code: 1, shortened: [], error };
}
const wallSeconds = (Date.now() - startedAt.getTime()) / 1000;
const { failed, summarized } = failedPackages();
const figures = readFigures();
rmSync(scratch, { recursive: true, force: true });

printTable(figures);
const goals = figures.filter((f) => f.met !== null);
const missed = goals.filter((f) => f.met === false);
const minutes = `${Math.floor(Math.round(wallSeconds) / 60)} min ${Math.round(wallSeconds) % 60} s`;
console.log(
  `\n${figures.length} figures, ${goals.length} with a goal: ${goals.length - missed.length} met, ` +
    `${missed.length} missed. ${long ? "Long" : "Default"} run, ${minutes}.`,
);
if (turbo.shortened.length > 0) {
  console.log("Short form (npm run bench -- --long runs these in full):");
  for (const { package: name, note } of turbo.shortened) console.log(`  ${name ?? "?"}: ${note}`);
}
const problem =
  failed.length > 0
    ? `the bench of ${failed.join(", ")} failed: its output is above, the figures it reported before ` +
      "are in the table. Run `npm run bench` in that package to see it alone."
    : turbo.code !== 0
      ? `turbo exited ${turbo.code}${summarized ? "" : " before running any bench"}` +
        `${turbo.error ? ` (${turbo.error.message})` : ""}: check turbo.json, and that \`npm install\` ran.`
      : null;
writeFileSync(
  join(root, "bench-results.json"),
  `${JSON.stringify(
    {
      startedAt: startedAt.toISOString(),
      wallSeconds: Math.round(wallSeconds),
      long,
      summary: {
        figures: figures.length,
        goals: goals.length,
        met: goals.length - missed.length,
        missed: missed.length,
      },
      failed,
      shortened: turbo.shortened,
      figures,
    },
    null,
    2,
  )}\n`,
);
console.log("Written to bench-results.json.");
if (problem !== null) {
  console.error(`[bench] ${problem}`);
  process.exit(1);
}
