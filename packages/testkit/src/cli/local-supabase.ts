/**
 * `cv-local-supabase [--port N] [--data-dir D] [--sql FILE]...` (`--version`: the product's version)
 *
 * Starts a local Supabase (PostgreSQL, the REST API and Supabase Auth), prints one JSON
 * line `{"url","anonKey","serviceRoleKey","jwtSecret","dbUrl","postgresUrl"}` on stdout once
 * it answers, logs to stderr, and stops cleanly on SIGINT/SIGTERM (exit 0).
 * Bad arguments exit 2; a failed start exits 1.
 */
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { PRODUCT_VERSION } from "@centrovision/core";
import { type LocalSupabase, startLocalSupabase } from "../local-supabase.js";

const USAGE = "usage: cv-local-supabase [--port N] [--data-dir DIR] [--sql FILE]... | --version";

function log(line: string): void {
  process.stderr.write(`[cv-local-supabase] ${line}\n`);
}

function usageError(message: string): never {
  process.stderr.write(`cv-local-supabase: ${message}\n${USAGE}\n`);
  process.exit(2);
}

function parseCommandLine() {
  let values: { port?: string; "data-dir"?: string; sql?: string[]; help?: boolean; version?: boolean };
  try {
    ({ values } = parseArgs({
      options: {
        port: { type: "string" },
        "data-dir": { type: "string" },
        sql: { type: "string", multiple: true },
        help: { type: "boolean", short: "h" },
        version: { type: "boolean", short: "V" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    usageError(error instanceof Error ? error.message : String(error));
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  if (values.version) {
    process.stdout.write(`${PRODUCT_VERSION}\n`);
    process.exit(0);
  }
  let port: number | undefined;
  if (values.port !== undefined) {
    port = Number(values.port);
    if (!/^[0-9]+$/.test(values.port) || port > 65535)
      usageError(`--port must be 0-65535, got ${JSON.stringify(values.port)}`);
  }
  const sqlFiles = (values.sql ?? []).map((file) => resolve(file));
  for (const file of sqlFiles) if (!existsSync(file)) usageError(`--sql file not found: ${file}`);
  const dataDir = values["data-dir"] === undefined ? undefined : resolve(values["data-dir"]);
  return { port, dataDir, sqlFiles };
}

async function main(): Promise<void> {
  const { port, dataDir, sqlFiles } = parseCommandLine();
  let stack: LocalSupabase | undefined;
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    if (!stack) return; // still starting: stopped as soon as the start finishes
    log("stopping");
    await stack.stop();
    process.exit(0);
  };
  process.on("SIGINT", () => void stop());
  process.on("SIGTERM", () => void stop());

  try {
    stack = await startLocalSupabase({
      sqlFiles,
      log,
      ...(port !== undefined && { port }),
      ...(dataDir !== undefined && { dataDir }),
    });
  } catch (error) {
    log(`failed to start: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  }
  if (stopping) {
    await stack.stop();
    process.exit(0);
  }
  const { url, anonKey, serviceRoleKey, jwtSecret, dbUrl, postgresUrl } = stack;
  process.stdout.write(
    `${JSON.stringify({ url, anonKey, serviceRoleKey, jwtSecret, dbUrl, postgresUrl })}\n`,
  );
  log(`ready: REST API at ${url}/rest/v1, Auth at ${url}/auth/v1 (Ctrl-C to stop)`);
}

await main();
