import { defineConfig, mergeConfig } from "vitest/config";
import shared from "../../vitest.shared.ts";

export default mergeConfig(
  shared,
  defineConfig({
    test: {
      environment: "jsdom",
      include: ["test/**/*.test.tsx"],
      setupFiles: ["./test/setup.ts"],
    },
  }),
);
