import { defineConfig } from "vitest/config";
import shared from "../../vitest.shared.ts";

/** Browser tests: one demo stack, Debian's Chromium, one file at a time (not the unit tests' include). */
export default defineConfig({
  resolve: shared.resolve,
  test: {
    include: ["test-e2e/**/*.e2e.ts"],
    globalSetup: ["./test-e2e/global-setup.ts"],
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 150_000,
  },
});
