import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { chmod, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** The clinic's sync daemon (`apps/sync-daemon`), run as its own process as on a clinic server. */
export interface DaemonProcess {
  /** `http://127.0.0.1:<port>` of its `/healthz`, `/status` and `/metrics`. */
  readonly statusUrl: string;
  stop(): Promise<void>;
}

export interface DaemonProcessOptions {
  dir: string;
  cloudUrl: string;
  anonKey: string;
  /**
   * For `centrovision-sync node create` only, as the clinic's IT person runs it once: its file is
   * removed as soon as the node credential exists, and the daemon never sees it.
   */
  serviceRoleKey: string;
  /** The clinic's name in the cloud (unique there). */
  clinicName: string;
  /** The names of the branches the clinic server holds. */
  branches: readonly string[];
  /** The daemon's login URL (member of centrovision_sync), without password. */
  clinicUrl: string;
  clinicPassword: string;
  httpPort: number;
}

const BIN = fileURLToPath(new URL("../../../sync-daemon/bin/centrovision-sync.mjs", import.meta.url));

async function secretFile(path: string, content: string): Promise<string> {
  await writeFile(path, content, { mode: 0o600 });
  await chmod(path, 0o600);
  return path;
}

/** Runs the daemon's CLI to the end; rejects with its stderr when it fails. */
async function runBin(args: readonly string[]): Promise<string> {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const [code] = (await once(child, "close")) as [number | null];
  if (code !== 0) throw new Error(`[demo] centrovision-sync ${args[0]} ${args[1]} failed:\n${stderr}`);
  return stdout;
}

/**
 * Writes a sync.toml (secrets in 0600 files beside it), makes the clinic server's node credential
 * with `centrovision-sync node create` and starts `centrovision-sync run`. Resolves once its
 * `/healthz` endpoint answers; its log goes to the demo's stderr (errors only).
 */
export async function startDaemonProcess(options: DaemonProcessOptions): Promise<DaemonProcess> {
  const passwordFile = await secretFile(join(options.dir, "sync-password"), options.clinicPassword);
  const configPath = join(options.dir, "sync.toml");
  const writeConfig = (nodeEmail: string | undefined) =>
    secretFile(
      configPath,
      [
        "[node]",
        'name = "clinica-demo"',
        "[cloud]",
        `url = "${options.cloudUrl}"`,
        `anon_key = "${options.anonKey}"`,
        ...(nodeEmail === undefined ? [] : [`node_email = "${nodeEmail}"`]),
        `node_password_file = "${join(options.dir, "node-password")}"`,
        "timeout_ms = 3000",
        "[clinic]",
        `url = "${options.clinicUrl}"`,
        `password_file = "${passwordFile}"`,
        "timeout_ms = 3000",
        "[sync]",
        "interval_ms = 1000",
        "min_backoff_ms = 500",
        "max_backoff_ms = 2000",
        "[http]",
        `port = ${options.httpPort}`,
        "[log]",
        'level = "error"',
      ].join("\n"),
    );
  await writeConfig(undefined);
  const keyFile = await secretFile(join(options.dir, "service-role.key"), options.serviceRoleKey);
  let created: string;
  try {
    created = await runBin([
      "node",
      "create",
      "--name",
      options.clinicName,
      ...options.branches.flatMap((branch) => ["--branch", branch]),
      "--service-role-key-file",
      keyFile,
      "--config",
      configPath,
    ]);
  } finally {
    await rm(keyFile, { force: true });
  }
  const nodeEmail = /^node_email = "(.+)"$/m.exec(created)?.[1];
  if (nodeEmail === undefined) throw new Error(`[demo] node create printed no node_email:\n${created}`);
  const config = await writeConfig(nodeEmail);
  const child: ChildProcess = spawn(process.execPath, [BIN, "run", "--config", config], {
    stdio: ["ignore", "inherit", "inherit"],
  });
  const exited = once(child, "exit");
  const statusUrl = `http://127.0.0.1:${options.httpPort}`;
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      await exited;
    }
  };
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`[demo] the sync daemon exited with code ${child.exitCode}`);
    const ready = await fetch(`${statusUrl}/healthz`).then(
      (response) => response.ok,
      () => false,
    );
    if (ready) return { statusUrl, stop };
    if (Date.now() > deadline) {
      await stop();
      throw new Error("[demo] the sync daemon did not answer /healthz within 60 s");
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
