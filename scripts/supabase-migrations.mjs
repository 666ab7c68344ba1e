#!/usr/bin/env node
// `npm run supabase:migrations`: writes sql/ as Supabase CLI migrations into supabase/migrations/
// (for teams that run `supabase db push`), each file ending with the bookkeeping of
// `centrovision-sync cloud migrate`. The generator is the daemon's TypeScript (it shares core's
// checksum and bookkeeping SQL), run from source: no build step.
import { fileURLToPath } from "node:url";
import { runSource } from "./run-source.mjs";

runSource(new URL("../apps/sync-daemon/src/cli/main.ts", import.meta.url), {
  args: ["cloud", "supabase-layout", fileURLToPath(new URL("../supabase/migrations/", import.meta.url))],
});
