import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { SyncProgress, SyncStatus } from "../../src/index.js";

const script = fileURLToPath(new URL("./engine-child.ts", import.meta.url));
const packageDir = fileURLToPath(new URL("../../", import.meta.url));

export type ChildLine = { progress: SyncProgress } | { status: SyncStatus };

export interface KilledEngine {
  readonly lines: ChildLine[];
  readonly signal: NodeJS.Signals | null;
  readonly stderr: string;
}

export interface EngineChild {
  /** SIGKILL: no handler runs, nothing is flushed. */
  kill(): void;
  /** Resolves once the child is reaped. */
  readonly exited: Promise<KilledEngine>;
}

/**
 * Runs the engine in a child process. `onLine` sees every line it prints and may kill it there and
 * then (`true`), so the kill lands right after the step the line reports.
 */
export function startEngineChild(
  env: Record<string, string>,
  onLine: (line: ChildLine, lines: readonly ChildLine[]) => boolean = () => false,
  timeoutMs = 60_000,
): EngineChild {
  const child = spawn(process.execPath, ["--conditions=@centrovision/source", "--import", "tsx", script], {
    cwd: packageDir,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: ChildLine[] = [];
  let stderr = "";
  const kill = () => child.kill("SIGKILL");
  const timer = setTimeout(kill, timeoutMs);
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  createInterface({ input: child.stdout }).on("line", (text) => {
    if (!text.startsWith("{")) return;
    const line = JSON.parse(text) as ChildLine;
    lines.push(line);
    if (onLine(line, lines)) kill();
  });
  const exited = new Promise<KilledEngine>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (_code, signal) => {
      clearTimeout(timer);
      resolve({ lines, signal, stderr });
    });
  });
  return { kill, exited };
}
