import { defineConfig, mergeConfig } from "vitest/config";
import shared from "../../vitest.shared.ts";

export default mergeConfig(
  shared,
  defineConfig({
    test: {
      // One real PostgreSQL per run (test/global-setup.ts); each test file makes its own databases on it.
      globalSetup: ["./test/global-setup.ts"],
    },
  }),
);
