import { defineConfig } from "tsup";

export default defineConfig({
  entry: ["src/index.ts"],
  format: ["esm"],
  dts: true,
  clean: true,
  sourcemap: true,
  // Runs in the desktop UI's browser bundle, not in Node.
  target: "es2022",
  platform: "browser",
});
