import { defineConfig, mergeConfig } from "vitest/config";
import shared from "../../vitest.shared.ts";

// Each test file starts the demo stack it needs (real PostgreSQL and local Supabase via testkit).
export default mergeConfig(shared, defineConfig({ test: { fileParallelism: false } }));
