import { defineConfig, mergeConfig } from "vitest/config";
import shared from "../../vitest.shared.ts";

export default mergeConfig(
  shared,
  defineConfig({
    test: {
      // One real PostgreSQL per run (test/global-setup.ts); each test file makes its own databases on it.
      globalSetup: ["./test/global-setup.ts"],
      // Most tests run the CLI as child processes, each a cold start of node: a test of ten
      // commands took 15–25 s in CI runs, and 30.07 s in one on the loaded 2 cores.
      testTimeout: 90_000,
    },
  }),
);
