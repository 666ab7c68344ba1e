import { appendFileSync, existsSync, readFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { type ErrorCode, isCvError } from "@centrovision/core";

/** One figure a bench measured, as the root `npm run bench` tabulates it. */
export interface BenchFigure {
  /** What was measured, short, e.g. "outbox drain, 5,000 rows → clinic server". */
  readonly figure: string;
  /** "ms", "s", "rows/s", "MB", "×", "B/row", "%", … */
  readonly unit: string;
  readonly measured: number;
  /** The same-run reference, when there is one (e.g. COPY, a straight call, the engine). */
  readonly reference?: { readonly label: string; readonly value: number };
  /** As the bench defines it (usually measured/reference, or reference/measured for times). */
  readonly ratio?: number;
  /** The goal applies to the measured value or to the ratio. */
  readonly goal?: { readonly of: "measured" | "ratio"; readonly atMost?: number; readonly atLeast?: number };
}

type Bounds = readonly (number | undefined)[];

/**
 * Fraction digits for `value` from `digits` up: more while it would print as one of its goal's
 * `bounds` without being it (a ratio of 0.9492 against a goal of ≥ 0.95 reads 0.949×, not 0.95×
 * and MISSED).
 */
function digitsBeside(value: number, digits: number, bounds: Bounds): number {
  let shown = digits;
  while (
    shown < 6 &&
    bounds.some((b) => b !== undefined && b !== value && b.toFixed(shown) === value.toFixed(shown))
  )
    shown++;
  return shown;
}

/** A number as the bench lines and the root table show it: 3 significant digits or whole, with its unit. */
function amount(value: number, unit: string, bounds: Bounds = []): string {
  const size = Math.abs(value);
  const significant = size >= 100 || size === 0 ? 0 : Math.min(6, 2 - Math.floor(Math.log10(size)));
  const digits = digitsBeside(value, significant, bounds);
  const text = value.toLocaleString("en", { minimumFractionDigits: digits, maximumFractionDigits: digits });
  return unit === "×" ? `${text}×` : `${text} ${unit}`;
}

/** A ratio as the bench lines and the root table show it. */
const times = (ratio: number, bounds: Bounds = []) => `${ratio.toFixed(digitsBeside(ratio, 2, bounds))}×`;

/** The name the root table files a figure under: the package of the working directory, and the bench file. */
function benchName(): string {
  let dir = process.cwd();
  while (!existsSync(join(dir, "package.json"))) {
    if (dirname(dir) === dir)
      throw new Error(`[testkit] no package.json above ${process.cwd()}: run benches from a package`);
    dir = dirname(dir);
  }
  const { name } = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { name: string };
  return `${name}/${basename(process.argv[1] ?? "bench")}`;
}

/** Whether `figure` meets its goal; null without one. NaN (nothing measured) never meets it. */
function goalMet({ figure, measured, ratio, goal }: BenchFigure): boolean | null {
  if (goal === undefined) return null;
  if (goal.atMost === undefined && goal.atLeast === undefined) {
    throw new Error(`[testkit] "${figure}": a goal needs atMost or atLeast (or leave the goal out)`);
  }
  if (goal.of === "ratio" && ratio === undefined) {
    throw new Error(`[testkit] "${figure}": the goal is of the ratio, but no ratio was given; pass ratio`);
  }
  const value = goal.of === "ratio" ? (ratio as number) : measured;
  return (
    (goal.atMost === undefined || value <= goal.atMost) &&
    (goal.atLeast === undefined || value >= goal.atLeast)
  );
}

/** Prints the figure as one line (with met / MISSED when it has a goal) and records it for the root table. */
export function reportFigure(figure: BenchFigure): void {
  const met = goalMet(figure);
  const { reference, ratio, goal, unit } = figure;
  const boundsOf = (of: "measured" | "ratio") => (goal?.of === of ? [goal.atLeast, goal.atMost] : []);
  let line = `${figure.figure.padEnd(48)} ${amount(figure.measured, unit, boundsOf("measured")).padStart(12)}`;
  if (reference !== undefined) line += `  (${reference.label}: ${amount(reference.value, unit)})`;
  if (ratio !== undefined) line += `  ${times(ratio, boundsOf("ratio"))}`;
  if (goal !== undefined) {
    const show = (bound: number) => (goal.of === "ratio" ? times(bound) : amount(bound, unit));
    const bounds = [
      goal.atLeast === undefined ? "" : `≥ ${show(goal.atLeast)}`,
      goal.atMost === undefined ? "" : `≤ ${show(goal.atMost)}`,
    ].filter(Boolean);
    line += `  goal ${goal.of === "ratio" ? "ratio " : ""}${bounds.join(", ")}: ${met ? "met" : "MISSED"}`;
  }
  console.log(line);
  const results = process.env.CV_BENCH_RESULTS;
  if (results) {
    const entry = { bench: benchName(), ...figure, met, at: new Date().toISOString() };
    appendFileSync(results, `${JSON.stringify(entry)}\n`);
  }
}

/**
 * `long` under `npm run bench -- --long` (CV_BENCH_LONG=1), else `short`, for a part of a bench that
 * takes minutes in full, so that a default run stays short. When short, it
 * prints `shortened` (what the short form leaves out) so nobody compares it with a full run's figure.
 */
export function longOrShort<T>(long: T, short: T, shortened: string): T {
  if (process.env.CV_BENCH_LONG === "1") return long;
  console.log(`short form: ${shortened}`);
  return short;
}

/** Resolves once `call` fails with `code`; any other outcome would mean a bench timed the wrong thing. */
export async function failsWith(call: Promise<unknown>, code: ErrorCode): Promise<void> {
  try {
    await call;
  } catch (error) {
    if (isCvError(error, code)) return;
    throw error;
  }
  throw new Error(`[testkit] expected ${code}, the call succeeded`);
}

/**
 * Times `candidate` and `baseline` called alternately (so both meet the same machine load) for
 * `rounds` rounds after `warmup`, and reports the candidate's p50 in ms against the baseline's
 * (`reference` names it) with their ratio, then prints both p95s.
 */
export async function compareAlternately(
  figure: string,
  reference: string,
  candidate: () => Promise<unknown>,
  baseline: () => Promise<unknown>,
  rounds: number,
  warmup: number,
): Promise<void> {
  const times: [number[], number[]] = [[], []];
  for (let round = 0; round < warmup + rounds; round++) {
    for (const side of round % 2 === 0 ? [0, 1] : [1, 0]) {
      const started = performance.now();
      await (side === 0 ? candidate : baseline)();
      if (round >= warmup) times[side]?.push(performance.now() - started);
    }
  }
  const [mine, theirs] = times.map((list) => list.sort((a, b) => a - b)) as [number[], number[]];
  const at = (sorted: number[], p: number) => sorted[Math.floor(p * sorted.length)] ?? Number.NaN;
  reportFigure({
    figure,
    unit: "ms",
    measured: at(mine, 0.5),
    reference: { label: reference, value: at(theirs, 0.5) },
    ratio: at(mine, 0.5) / at(theirs, 0.5),
  });
  console.log(`  p95 ${amount(at(mine, 0.95), "ms")} vs ${amount(at(theirs, 0.95), "ms")}`);
}
