import { defineConfig, mergeConfig } from "vitest/config";
import shared from "../../vitest.shared.ts";

export default mergeConfig(
  shared,
  defineConfig({
    test: {
      // One real PostgreSQL per run; each test file copies a migrated template database.
      globalSetup: ["./test/global-setup.ts"],
    },
  }),
);
