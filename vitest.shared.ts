import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

const packagesDir = fileURLToPath(new URL("./packages/", import.meta.url));

/**
 * Shared test config: workspace packages resolve to their TypeScript sources,
 * so `npm test` needs no build step and always tests the code in the tree.
 */
export default defineConfig({
  resolve: {
    alias: [
      {
        find: /^@centrovision\/([a-z-]+)\/([a-z-]+)$/,
        replacement: `${packagesDir}$1/src/$2/index.ts`,
      },
      {
        find: /^@centrovision\/([a-z-]+)$/,
        replacement: `${packagesDir}$1/src/index.ts`,
      },
    ],
  },
  test: {
    include: ["test/**/*.test.ts", "test/**/*.test.tsx"],
    testTimeout: 30_000,
    hookTimeout: 120_000,
  },
});
