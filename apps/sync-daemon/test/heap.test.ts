import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { HEAP_GROWING_FLAG } from "../src/heap.js";

describe("the daemon's heap tuning", () => {
  // v8.setFlagsFromString ignores a flag V8 does not know: node's command line refuses it.
  it("is a flag this node's V8 knows", () => {
    const known = spawnSync(process.execPath, [HEAP_GROWING_FLAG, "-e", "0"], { encoding: "utf8" });
    expect(known.stderr).toBe("");
    expect(known.status).toBe(0);
    const misspelt = spawnSync(process.execPath, ["--heap-growing-percnt=50", "-e", "0"], {
      encoding: "utf8",
    });
    expect(misspelt.status).not.toBe(0);
  });
});
