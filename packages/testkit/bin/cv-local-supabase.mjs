#!/usr/bin/env node
// Runs the CLI from its TypeScript source (tsx), so `npx cv-local-supabase` works on a
// fresh clone without `npm run build`. The package's tsconfig supplies the
// `@centrovision/source` condition, so workspace packages resolve to source too.
import { fileURLToPath } from "node:url";
import { register } from "tsx/esm/api";

register({ tsconfig: fileURLToPath(new URL("../tsconfig.json", import.meta.url)) });
await import("../src/cli/local-supabase.ts");
