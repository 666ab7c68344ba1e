import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

/** The real bin, as an IT person runs it (it re-executes node on the TypeScript source). */
export const BIN = fileURLToPath(new URL("../../bin/centrovision-sync.mjs", import.meta.url));

export interface CliResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** A running `centrovision-sync` process. */
export interface CliProcess {
  readonly child: ChildProcess;
  /** Resolves with the first stderr JSON log line `match` accepts. */
  waitForLog(
    match: (line: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
  readonly logs: Record<string, unknown>[];
  readonly done: Promise<CliResult>;
}

export function spawnCli(args: readonly string[], env: Record<string, string> = {}): CliProcess {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  const logs: Record<string, unknown>[] = [];
  const waiters = new Set<(line: Record<string, unknown>) => void>();
  child.stdout?.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  if (child.stderr) {
    createInterface({ input: child.stderr }).on("line", (text) => {
      if (!text.startsWith("{")) return;
      const line = JSON.parse(text) as Record<string, unknown>;
      logs.push(line);
      for (const waiter of waiters) waiter(line);
    });
  }
  const done = new Promise<CliResult>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return {
    child,
    logs,
    done,
    waitForLog(match, timeoutMs = 30_000) {
      const seen = logs.find(match);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no matching log line within ${timeoutMs} ms; stderr:\n${stderr}`));
        }, timeoutMs);
        const check = (line: Record<string, unknown>) => {
          if (!match(line)) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve(line);
        };
        waiters.add(check);
        done.then(() => {
          clearTimeout(timer);
          reject(new Error(`the process exited before the log line; stderr:\n${stderr}`));
        });
      });
    },
  };
}

/** Runs a command to the end; kills it after `timeoutMs`. */
export async function runCli(args: readonly string[], env: Record<string, string> = {}, timeoutMs = 60_000) {
  const proc = spawnCli(args, env);
  const timer = setTimeout(() => proc.child.kill("SIGKILL"), timeoutMs);
  try {
    return await proc.done;
  } finally {
    clearTimeout(timer);
  }
}
