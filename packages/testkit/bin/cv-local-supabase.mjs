#!/usr/bin/env node
// Runs the CLI from its TypeScript source, so `npx cv-local-supabase` works without a build.
import { runSource } from "../../../scripts/run-source.mjs";

runSource(new URL("../src/cli/local-supabase.ts", import.meta.url));
