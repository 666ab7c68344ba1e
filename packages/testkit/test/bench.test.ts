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

describe("reportFigure", () => {
  it("prints a ratio that misses its goal with the digits that show it below the goal", () => {
    const line = lineOf({
      figure: "sync against COPY",
      unit: "rows/s",
      measured: 20_000,
      ratio: 0.9492,
      goal: { of: "ratio", atLeast: 0.95 },
    });
    expect(line).toContain("0.949×");
    expect(line).toMatch(/goal ratio ≥ 0\.95×: MISSED$/);
  });

  it("prints a measured value just over its limit with the digits that show it over", () => {
    const line = lineOf({
      figure: "peak RSS",
      unit: "MB",
      measured: 150.4,
      goal: { of: "measured", atMost: 150 },
    });
    expect(line).toContain("150.4 MB");
    expect(line).toMatch(/goal ≤ 150 MB: MISSED$/);
  });

  it("keeps two digits for a ratio away from its goal, and for one exactly on it", () => {
    const far = lineOf({
      figure: "far",
      unit: "s",
      measured: 1,
      ratio: 0.4321,
      goal: { of: "ratio", atLeast: 0.5 },
    });
    expect(far).toContain(" 0.43× ");
    const on = lineOf({
      figure: "on",
      unit: "s",
      measured: 1,
      ratio: 0.95,
      goal: { of: "ratio", atLeast: 0.95 },
    });
    expect(on).toMatch(/ 0\.95× {2}goal ratio ≥ 0\.95×: met$/);
  });
});
