#!/usr/bin/env node
// Runs the CLI from its TypeScript source, so `npx centrovision-sync` works on a fresh clone
// without a build. The child finishes its batch on SIGTERM and exits on its own.
import { runSource } from "../../../scripts/run-source.mjs";

runSource(new URL("../src/cli/main.ts", import.meta.url));
