#!/usr/bin/env node
// `npm run demo`: runs apps/desktop's demo from its TypeScript sources (no build step), passing
// signals through so Ctrl-C stops every embedded server.
import { runSource } from "./run-source.mjs";

runSource(new URL("../apps/desktop/src/demo/main.ts", import.meta.url), {
  cwd: new URL("../apps/desktop/", import.meta.url),
});
