import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isCvError, PRODUCT_VERSION } from "@centrovision/core";
import { configPath, loadDesktopConfig } from "../config.js";
import { UI_DIR } from "../ui-bundle.js";
import { startBackendServer } from "./server.js";
import { createPcStack } from "./stack.js";

/**
 * Opens the UI in the default browser through an owner-only page that redirects to the address with
 * the secret, as Jupyter does: any user of the PC can read a command line (`ps`), xdg-open's and the
 * browser's included, but not a file in a 0700 folder. Returns what removes the page. Without a
 * browser (or xdg-open) it says so; the address printed above still works.
 */
function openInBrowser(appUrl: string): () => void {
  const folder = mkdtempSync(join(tmpdir(), "centrovision-"));
  const page = join(folder, "abrir-centrovision.html");
  writeFileSync(
    page,
    `<!doctype html><meta charset="utf-8"><meta http-equiv="refresh" content="0;url=${appUrl}"><title>CentroVision</title><a href="${appUrl}">Abrir CentroVision</a>\n`,
    { mode: 0o600 },
  );
  // Windows: cmd's `start` is the default handler of a file; quoted as Node quotes `shell: true`.
  const [command, args] =
    process.platform === "win32"
      ? ["cmd.exe", ["/d", "/s", "/c", `"start "" "${page}""`]]
      : [process.platform === "darwin" ? "open" : "xdg-open", [page]];
  const failed = (why: string) =>
    console.error(`[desktop] could not open a browser (${command}: ${why}): open the address above in one`);
  // Detached: a Ctrl-C that stops the backend must not close the browser it started.
  const opener = spawn(command, args, {
    stdio: "ignore",
    detached: true,
    windowsHide: true,
    windowsVerbatimArguments: true,
  });
  opener.once("error", (error: NodeJS.ErrnoException) => failed(error.code ?? error.message));
  opener.once("exit", (code) => {
    if (code !== 0 && code !== null) failed(`exit code ${code}`);
  });
  opener.unref();
  return () => rmSync(folder, { recursive: true, force: true });
}

/**
 * `npm start -w @centrovision/desktop [-- --config path]`, or the single executable: the backend of
 * one PC, reading `~/.centrovision/config.toml`, serving the commands and the built UI on 127.0.0.1.
 * Calls must carry this launch's secret: `CENTROVISION_DESKTOP_SECRET` from a shell that runs it as
 * its sidecar, else a new one. With `--sidecar` it prints one JSON line for the shell (README,
 * "Shipping the desktop") and stops when its stdin closes; otherwise it prints the address, secret in
 * its fragment, and opens it in the default browser unless `--no-open`.
 */
async function main(): Promise<void> {
  const argv = process.argv;
  if (argv.includes("--version")) {
    console.log(`centrovision-desktop ${PRODUCT_VERSION}`);
    return;
  }
  const sidecar = argv.includes("--sidecar");
  const config = loadDesktopConfig(configPath(argv, process.env));
  const stack = await createPcStack({ config });
  const hasUi = existsSync(join(UI_DIR, "index.html"));
  // A shell running this backend as its sidecar passes the secret it hands its webview.
  const fromShell = process.env.CENTROVISION_DESKTOP_SECRET;
  const server = await startBackendServer({
    context: {
      router: stack.router,
      homeBranchId: config.branch_id,
      session: stack.session,
      offline: stack.offline,
      audit: stack.audit,
    },
    port: config.server.port,
    ...(hasUi && { uiDir: UI_DIR }),
    ...(fromShell !== undefined && fromShell !== "" && { secret: fromShell }),
  });
  let closePage = () => {};
  const stop = async () => {
    closePage();
    await server.close();
    await stack.close();
    process.exit(0);
  };
  process.once("SIGINT", () => void stop());
  process.once("SIGTERM", () => void stop());
  if (sidecar) {
    const ready = {
      ready: true,
      url: server.url,
      port: server.port,
      secret: server.secret,
      version: PRODUCT_VERSION,
    };
    process.stdout.write(`${JSON.stringify(ready)}\n`);
    // A shell that dies without stopping its sidecar closes this pipe: the backend then stops too,
    // instead of holding the port and the local database for the next launch.
    process.stdin.once("end", () => void stop());
    process.stdin.resume();
    return;
  }
  const open = fromShell ? server.url : server.appUrl;
  console.log(
    `[desktop] listening on ${open}${hasUi ? "" : " (API only: run `npm run build:ui` for the UI)"}`,
  );
  if (hasUi && !argv.includes("--no-open")) closePage = openInBrowser(server.appUrl);
}

main().catch((error: unknown) => {
  // CvError messages name the file and field and never carry secrets or patient data.
  if (isCvError(error, "invalid_config") && error.issues.length > 0) {
    // Every problem on its own line, as the sync daemon lists them.
    let file = "";
    try {
      file = ` ${configPath(process.argv, process.env)}`;
    } catch {
      // The --config flag itself was the problem: its issue says so below.
    }
    process.stderr.write(`[desktop] invalid config${file}:\n`);
    for (const issue of error.issues) process.stderr.write(`  ${issue.path}: ${issue.message}\n`);
  } else {
    console.error(
      isCvError(error) ? error.message : "[desktop] could not start",
      isCvError(error) ? "" : error,
    );
  }
  process.exit(isCvError(error) && error.code === "invalid_config" ? 78 : 1);
});
