import { CvError, isCvError, PRODUCT_VERSION } from "@centrovision/core";
import { Command, CommanderError } from "commander";
import {
  type DaemonConfig,
  DEFAULT_CONFIG_PATH,
  loadConfig,
  redactUrl,
  withAdminLogin,
} from "../config/load-config.js";
import { EX_CONFIG, EXIT_OK, EXIT_SYNC_FAILURE } from "../exit-codes.js";
import { addAuditCommand } from "./audit-command.js";
import { addCloudCommand } from "./cloud-command.js";
import { addConflictsCommand } from "./conflicts-command.js";
import { addNodeCommand } from "./node-command.js";

const print = (text: string) => process.stdout.write(`${text}\n`);

// Each command loads what it runs when it runs: `--help` and `config check` never load the sync
// engine, the cloud client, the logger or the metrics (start-up time, measured in the README).

const program = new Command("centrovision-sync")
  .description("Keeps the clinic's PostgreSQL server in sync with Supabase (the clinic's failover server)")
  .version(PRODUCT_VERSION, "-V, --version", "print the version of CentroVision this is")
  .option(
    "-c, --config <path>",
    "config file (TOML)",
    process.env.CENTROVISION_SYNC_CONFIG ?? DEFAULT_CONFIG_PATH,
  )
  .exitOverride()
  .showHelpAfterError();

let loaded: DaemonConfig | undefined;
/** The config, read once at start-up of the command that needs it. */
const config = (): DaemonConfig => {
  loaded ??= loadConfig(program.opts<{ config: string }>().config);
  return loaded;
};

/**
 * Resolves on the first SIGTERM/SIGINT. The handlers stay: under systemd both the launcher and
 * this process may receive the signal, and a second one must not kill the batch in flight.
 */
const terminated = () =>
  new Promise<NodeJS.Signals>((resolve) => {
    process.on("SIGTERM", () => resolve("SIGTERM"));
    process.on("SIGINT", () => resolve("SIGINT"));
  });

program
  .command("init")
  .description(
    "apply the sql/ migrations and roles to the clinic database and register this node (idempotent)",
  )
  .option("--admin-url <url>", "a database owner or superuser login (instead of [clinic] admin_url)")
  .option(
    "--admin-password-file <file>",
    "its password, owner-only (instead of [clinic] admin_password_file)",
  )
  .action(async (options: { adminUrl?: string; adminPasswordFile?: string }) => {
    if (options.adminPasswordFile !== undefined && options.adminUrl === undefined) {
      throw new CvError("invalid_config", "[sync-daemon] --admin-password-file needs --admin-url", {
        issues: [{ path: "--admin-url", message: "required with --admin-password-file" }],
      });
    }
    const { initClinic } = await import("../init.js");
    const result = await initClinic(
      options.adminUrl === undefined
        ? config()
        : withAdminLogin(config(), options.adminUrl, options.adminPasswordFile),
    );
    const { migrationsApplied: applied, login, node } = result;
    print(
      applied.length === 0
        ? "migrations: the database is current"
        : `migrations: applied ${applied.join(", ")}`,
    );
    print(
      `login ${login.user}: ${login.created ? "created in role centrovision_sync" : login.granted ? "granted centrovision_sync" : "already in role centrovision_sync"}`,
    );
    print(`node: ${node.nodeName} (${node.nodeId})${node.renamed ? " registered" : ", already registered"}`);
    const changed = applied.length > 0 || login.created || login.granted || node.renamed;
    print(changed ? "init done" : "init: nothing to do");
  });

program
  .command("run")
  .description("run the sync loop until SIGTERM (the systemd service)")
  .action(async () => {
    const [{ startDaemon }, { tuneHeapForSync }] = await Promise.all([
      import("../daemon.js"),
      import("../heap.js"),
    ]);
    tuneHeapForSync();
    const daemon = await startDaemon(config());
    const signal = await terminated();
    process.stderr.write(`${signal}: finishing the batch in flight\n`);
    await daemon.stop();
  });

program
  .command("once")
  .description(
    "run one sync cycle and the identity copy; exit code 0 when both directions drained and the copy succeeded, 1 otherwise",
  )
  .action(async () => {
    let signalled = false;
    const interrupt = terminated().then(() => {
      signalled = true;
    });
    const [{ runOnce }, { createLogger }, { hintFor }, { describeIdentity }, { tuneHeapForSync }] =
      await Promise.all([
        import("../daemon.js"),
        import("../logger.js"),
        import("../peers.js"),
        import("../standalone-status.js"),
        import("../heap.js"),
      ]);
    tuneHeapForSync();
    const status = await runOnce(config(), { logger: createLogger(config().log.level), interrupt });
    print(
      `${status.mode}: pending up ${status.pendingUp ?? "-"}, down ${status.pendingDown ?? "-"}, ${status.conflictsOpen ?? "-"} open conflict(s)`,
    );
    if (status.quarantined)
      print(
        `quarantined: the cloud refused ${status.quarantined} change(s) of this clinic and holds them for its administrator (cv_sync.quarantine: outside this clinic's branches, or not their author's to make)`,
      );
    for (const blocked of status.blocked) print(`blocked ${blocked.direction}: ${blocked.message}`);
    if (status.lastError && status.consecutiveFailures > 0) {
      const { code, message } = status.lastError;
      print(`sync failed: ${message}\n  what to do: ${hintFor(code, message)}`);
    }
    print(`identity: ${describeIdentity(status.identity)}`);
    // A SIGTERM is a requested stop, not a failure: what was applied is whole (exit 0).
    const failed = status.mode !== "in-sync" || status.identity.lastError !== null;
    if (failed && !signalled) process.exitCode = EXIT_SYNC_FAILURE;
  });

program
  .command("status")
  .description(
    "mode, lag, pending changes, last sync, open conflicts, clock skew; exit code 1 when a node cannot be reached or a direction is blocked",
  )
  .option("--json", "machine-readable output")
  .action(async (options: { json?: boolean }) => {
    const { formatStatus, readStatus, statusFailed } = await import("../standalone-status.js");
    const report = await readStatus(config());
    print(options.json ? JSON.stringify(report) : formatStatus(report));
    if (statusFailed(report)) process.exitCode = EXIT_SYNC_FAILURE;
  });

program
  .command("config")
  .description("configuration")
  .command("check")
  .description("validate the config file and read its secrets (prints no secret)")
  .action(() => {
    const current = config();
    print(
      `config ok: node ${current.nodeName}, cloud ${new URL(current.cloud.url).host}, clinic ${redactUrl(current.clinic.url)}`,
    );
  });

program
  .command("doctor")
  .description("check config, clinic database, roles, cloud, TLS, clock and disk; print what to fix")
  .option("--json", "machine-readable output")
  .action(async (options: { json?: boolean }) => {
    const { formatDoctor, runDoctor } = await import("../doctor.js");
    const checks = await runDoctor(config());
    print(options.json ? JSON.stringify(checks) : formatDoctor(checks));
    if (checks.some((check) => check.status === "fail")) process.exitCode = EXIT_SYNC_FAILURE;
  });

addConflictsCommand(program, config, print);
addAuditCommand(program, config, print);
addCloudCommand(program, print);
addNodeCommand(program, () => program.opts<{ config: string }>().config, print);

/** Whether the running command reads the config file: `cloud …` runs from a laptop without one. */
let readsConfig = true;
program.hook("preAction", (_program, action) => {
  readsConfig = action.parent?.name() !== "cloud";
});

function report(error: unknown): number {
  if (error instanceof CommanderError) return error.exitCode === 0 ? EXIT_OK : EX_CONFIG;
  if (isCvError(error, "invalid_config")) {
    const file = readsConfig ? ` (${program.opts<{ config: string }>().config})` : "";
    process.stderr.write(`centrovision-sync: invalid configuration${file}:\n`);
    const issues = error.issues.length > 0 ? error.issues : [{ path: "(config)", message: error.message }];
    for (const issue of issues) process.stderr.write(`  ${issue.path}: ${issue.message}\n`);
    return EX_CONFIG;
  }
  const message =
    error instanceof CvError ? error.message : `unexpected ${error instanceof Error ? error.name : "error"}`;
  process.stderr.write(`centrovision-sync: ${message}\n`);
  // A database a newer version migrated, or a migration edited after it ran: restarting cannot
  // fix either, a person must (the unit does not restart on EX_CONFIG).
  return isCvError(error, "conflict") ? EX_CONFIG : EXIT_SYNC_FAILURE;
}

try {
  await program.parseAsync(process.argv);
} catch (error) {
  process.exitCode = report(error);
}
// Every command has closed what it opened by now. supabase-js's Realtime leaves a 10 s timer
// behind each disconnect (its socket adapter never clears it), which would keep the process
// alive that long after `once`, or after `run` was told to stop. The logger writes synchronously.
process.exit();
