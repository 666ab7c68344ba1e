import { existsSync } from "node:fs";
import { join } from "node:path";
import { isCvError } from "@centrovision/core";
import { configPath, loadDesktopConfig } from "../config.js";
import { UI_DIR } from "../ui-bundle.js";
import { startBackendServer } from "./server.js";
import { createPcStack } from "./stack.js";

/**
 * `npm start -w @centrovision/desktop [-- --config path]`: the backend of one PC, reading
 * `~/.centrovision/config.toml`, serving the commands and the built UI on 127.0.0.1. Calls must
 * carry this launch's secret: `CENTROVISION_DESKTOP_SECRET` from a shell that runs it as its
 * sidecar, else a new one, in the fragment of the address it prints for a browser.
 */
async function main(): Promise<void> {
  const config = loadDesktopConfig(configPath(process.argv, process.env));
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
  const open = fromShell ? server.url : server.appUrl;
  console.log(
    `[desktop] listening on ${open}${hasUi ? "" : " (API only: run `npm run build:ui` for the UI)"}`,
  );
  const stop = async () => {
    await server.close();
    await stack.close();
    process.exit(0);
  };
  process.once("SIGINT", () => void stop());
  process.once("SIGTERM", () => void stop());
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
