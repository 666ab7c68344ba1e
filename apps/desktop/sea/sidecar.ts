import { type ChildProcessByStdio, spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import type { Readable, Writable } from "node:stream";

/** The line a backend started with `--sidecar` prints on stdout once it listens. */
export interface SidecarReady {
  readonly ready: true;
  /** `http://127.0.0.1:<port>`: `POST <url>/invoke/<command>`, the UI at `<url>/`. */
  readonly url: string;
  readonly port: number;
  /** What every call carries (`Authorization: Bearer <secret>`): the shell's own, or a new one. */
  readonly secret: string;
  readonly version: string;
}

export interface Sidecar extends SidecarReady {
  /** `invoke` over the backend's transport, as the UI calls it; the status kept for assertions. */
  invoke<T = unknown>(command: string, args?: unknown): Promise<{ status: number; body: T }>;
  /** Closes its stdin, as a shell that goes away does, and resolves with its exit code. */
  stop(): Promise<number | null>;
  /** What it wrote on stderr so far (start-up problems, warnings). */
  stderr(): string;
}

export interface StartSidecarOptions {
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Default 30 s. */
  readonly timeoutMs?: number;
}

/** The ready line, or undefined for any other line. */
function readyLine(line: string): SidecarReady | undefined {
  try {
    const parsed = JSON.parse(line) as Partial<SidecarReady> | null;
    return parsed?.ready === true ? (parsed as SidecarReady) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Starts a desktop backend as a shell runs its sidecar (`command` is the executable, or `node` with
 * the bundle first in `args`; `--sidecar` is added) and waits for its ready line, as the Tauri shell
 * reads it. Rejects, with its stderr, when it exits or stays silent instead.
 */
export async function startSidecar(
  command: string,
  args: readonly string[],
  options: StartSidecarOptions = {},
): Promise<Sidecar> {
  const child: ChildProcessByStdio<Writable, Readable, Readable> = spawn(command, [...args, "--sidecar"], {
    stdio: ["pipe", "pipe", "pipe"],
    ...(options.cwd !== undefined && { cwd: options.cwd }),
    ...(options.env !== undefined && { env: options.env }),
  });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  const exited = once(child, "exit") as Promise<[number | null, NodeJS.Signals | null]>;
  const lines = createInterface({ input: child.stdout });
  const timeoutMs = options.timeoutMs ?? 30_000;
  let timer: NodeJS.Timeout | undefined;
  // Every line is read to the end, so a backend that writes more never blocks on a full pipe.
  const announced = new Promise<SidecarReady | undefined>((resolve) => {
    lines.on("line", (line) => {
      const parsed = readyLine(line);
      if (parsed !== undefined) resolve(parsed);
    });
    lines.once("close", () => resolve(undefined));
  });
  const ready = await Promise.race([
    announced,
    exited.then(() => undefined),
    new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), timeoutMs);
    }),
  ]);
  clearTimeout(timer);
  if (ready === undefined) {
    child.kill("SIGKILL");
    throw new Error(
      `[desktop] ${command} printed no ready line within ${timeoutMs} ms (exit code ${child.exitCode}); its stderr:\n${stderr}`,
    );
  }
  return {
    ...ready,
    async invoke<T>(command: string, args: unknown = {}) {
      const response = await fetch(`${ready.url}/invoke/${command}`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${ready.secret}` },
        body: JSON.stringify(args),
      });
      return { status: response.status, body: (await response.json()) as T };
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.stdin.end();
      const [code] = await exited;
      lines.close();
      return code;
    },
    stderr: () => stderr,
  };
}
