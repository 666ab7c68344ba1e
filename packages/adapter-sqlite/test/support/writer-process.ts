import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const script = fileURLToPath(new URL("./durable-writer.ts", import.meta.url));
const packageDir = fileURLToPath(new URL("../../", import.meta.url));

export interface KilledWriter {
  /** Ids whose write had resolved (been acknowledged) before the kill. */
  readonly acked: string[];
  readonly signal: NodeJS.Signals | null;
  readonly stderr: string;
}

/**
 * Runs the writer child, SIGKILLs it `delayMs` after its `killAfter`-th acknowledgement (so the
 * kill lands inside a later write, possibly inside a snapshot), and waits until it is reaped:
 * a zombie would still look alive to the lock check.
 */
export function runWriterUntilKilled(options: {
  path: string;
  keyHex: string;
  branchId: string;
  label: string;
  killAfter: number;
  delayMs: number;
}): Promise<KilledWriter> {
  const child = spawn(
    process.execPath,
    [
      // tsx runs the TypeScript child; the condition resolves workspace packages to their
      // sources, as in the tests themselves (a fresh clone has no dist/).
      "--conditions=@centrovision/source",
      "--import",
      "tsx",
      script,
      options.path,
      options.keyHex,
      options.branchId,
      options.label,
    ],
    { cwd: packageDir, stdio: ["ignore", "pipe", "pipe"] },
  );
  const acked: string[] = [];
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const lines = createInterface({ input: child.stdout });
  lines.on("line", (line) => {
    // After the kill is sent, lines already in the pipe were still acknowledged before it.
    if (line.startsWith("ack ")) acked.push(line.slice(4));
    if (acked.length === options.killAfter) setTimeout(() => child.kill("SIGKILL"), options.delayMs);
  });
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (_code, signal) => resolve({ acked, signal, stderr }));
  });
}
