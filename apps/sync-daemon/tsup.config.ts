import { defineConfig } from "tsup";

// One file for the CLI, with the workspace packages inside (from their TypeScript source) and the
// npm dependencies left to node_modules: the bin starts it without compiling anything.
export default defineConfig({
  entry: { cli: "src/cli/main.ts" },
  format: ["esm"],
  platform: "node",
  target: "node20",
  clean: true,
  sourcemap: true,
  noExternal: [/^@centrovision\//],
  esbuildOptions(options) {
    options.conditions = ["@centrovision/source"];
  },
});
