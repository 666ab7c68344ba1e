import { describe, expect, it, vi } from "vitest";
import { reportFigure } from "../src/bench.js";

/** The line reportFigure prints for `figure`. */
function lineOf(figure: Parameters<typeof reportFigure>[0]): string {
  const log = vi.spyOn(console, "log").mockImplementation(() => {});
  try {
    reportFigure(figure);
    return String(log.mock.calls[0]?.[0]);
  } finally {
    log.mockRestore();
  }
}

/** The line of a sync measured at `ratio` of COPY, against a goal of at least `atLeast`. */
const ratioLine = (ratio: number, atLeast: number) =>
  lineOf({ figure: "sync", unit: "rows/s", measured: 20_000, ratio, goal: { of: "ratio", atLeast } });

describe("reportFigure", () => {
  it("prints a ratio that misses its goal with the digits that show it below the goal", () => {
    expect(ratioLine(0.9492, 0.95)).toMatch(/ 0\.949× {2}goal ratio ≥ 0\.95×: MISSED$/);
  });

  it("prints a measured value just over its limit with the digits that show it over", () => {
    const line = lineOf({
      figure: "peak RSS",
      unit: "MB",
      measured: 150.4,
      goal: { of: "measured", atMost: 150 },
    });
    expect(line).toMatch(/ 150\.4 MB {2}goal ≤ 150 MB: MISSED$/);
  });

  it("keeps two digits for a ratio away from its goal, and for one exactly on it", () => {
    expect(ratioLine(0.4321, 0.5)).toMatch(/ 0\.43× {2}goal ratio ≥ 0\.50×: MISSED$/);
    expect(ratioLine(0.95, 0.95)).toMatch(/ 0\.95× {2}goal ratio ≥ 0\.95×: met$/);
  });
});
