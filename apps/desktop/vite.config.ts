import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

/**
 * The React UI, built into dist/ui and served by the backend. Workspace packages resolve to their
 * TypeScript sources through the `@centrovision/source` export condition, so no package needs a build.
 */
export default defineConfig({
  root: fileURLToPath(new URL("./src/ui/", import.meta.url)),
  base: "./",
  resolve: { conditions: ["@centrovision/source", "module", "browser", "production"] },
  oxc: { jsx: { runtime: "automatic" } },
  build: {
    outDir: fileURLToPath(new URL("./dist/ui/", import.meta.url)),
    emptyOutDir: true,
    chunkSizeWarningLimit: 1_500,
    rollupOptions: {
      // lucide-react marks its modules "use client" (a React Server Components hint): meaningless here.
      onwarn(warning, warn) {
        if (warning.code !== "MODULE_LEVEL_DIRECTIVE") warn(warning);
      },
    },
  },
});
