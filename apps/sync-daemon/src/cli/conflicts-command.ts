import { CvError } from "@centrovision/core";
import type { SyncConflict } from "@centrovision/sync-engine";
import type { Command } from "commander";
import type { DaemonConfig } from "../config/load-config.js";
import type { createPeers } from "../peers.js";

type Load = () => DaemonConfig;

/** Runs `use` with the clinic server's peer (conflicts and its audit trail live there), closing both peers after. */
export async function withClinic<T>(
  load: Load,
  use: (peer: ReturnType<typeof createPeers>["local"]) => Promise<T>,
): Promise<T> {
  const { createPeers } = await import("../peers.js");
  const { local, remote } = createPeers(load());
  try {
    return await use(local);
  } finally {
    await Promise.all([local.close(), remote.close()]);
  }
}

function summary(conflict: SyncConflict): string {
  return [
    conflict.id,
    conflict.status.padEnd(8),
    conflict.table.padEnd(14),
    conflict.rowId,
    `winner=${conflict.winner}`,
    conflict.reason,
    conflict.createdAt,
  ].join("  ");
}

/** `conflicts list|show|resolve`: review on the clinic server; a resolution syncs with the next cycle. */
export function addConflictsCommand(program: Command, load: Load, print: (text: string) => void): void {
  const conflicts = program
    .command("conflicts")
    .description("review concurrent edits kept on the clinic server");
  conflicts
    .command("list")
    .description("conflicts waiting for a reviewer (--all: resolved ones too)")
    .option("--all", "include resolved conflicts")
    .option("--limit <n>", "at most this many", "100")
    .option("--json", "machine-readable output")
    .action(async (options: { all?: boolean; limit: string; json?: boolean }) => {
      const limit = Number(options.limit);
      if (!Number.isInteger(limit) || limit < 1) {
        throw new CvError("invalid_input", "[sync-daemon] --limit must be a positive integer");
      }
      const list = await withClinic(load, (peer) =>
        peer.listConflicts({ status: options.all ? "all" : "open", limit }),
      );
      if (options.json)
        return print(JSON.stringify(list.map(({ localRow: _l, remoteRow: _r, ...rest }) => rest)));
      print(list.length === 0 ? "no conflicts" : list.map(summary).join("\n"));
    });
  conflicts
    .command("show <id>")
    .description("both versions of one conflict (contains patient data: for the reviewer's eyes only)")
    .option("--json", "machine-readable output")
    .action(async (id: string, options: { json?: boolean }) => {
      const all = await withClinic(load, (peer) => peer.listConflicts({ status: "all", limit: 1000 }));
      const conflict = all.find((candidate) => candidate.id === id);
      if (!conflict) {
        throw new CvError(
          "not_found",
          `[sync-daemon] no conflict ${id} on the clinic server: see \`conflicts list --all\``,
        );
      }
      if (options.json) return print(JSON.stringify(conflict, null, 2));
      const columns = conflict.columns?.join(", ") ?? "all";
      print(
        [
          summary(conflict),
          `policy ${conflict.policy}; columns edited on both sides: ${columns}`,
          `local  (${conflict.localOrigin ?? "?"}, ${conflict.localHlc ?? "?"}): ${JSON.stringify(conflict.localRow)}`,
          `remote (${conflict.remoteOrigin ?? "?"}, ${conflict.remoteHlc ?? "?"}): ${JSON.stringify(conflict.remoteRow)}`,
        ].join("\n"),
      );
    });
  conflicts
    .command("resolve <id>")
    .description("settle a conflict by keeping one side's version; the choice syncs like any edit")
    .requiredOption("--keep <side>", "local (the clinic server's row) or remote (the cloud's)")
    .option("--by <name>", "who decided, recorded with the resolution")
    .action(async (id: string, options: { keep: string; by?: string }) => {
      if (options.keep !== "local" && options.keep !== "remote") {
        throw new CvError("invalid_input", "[sync-daemon] --keep must be local or remote");
      }
      const keep = options.keep;
      const result = await withClinic(load, (peer) =>
        peer.resolveConflict(id, { keep }, options.by === undefined ? {} : { resolvedBy: options.by }),
      );
      print(
        `resolved ${result.id} (kept ${keep}, new version ${result.version}); it reaches the cloud with the next cycle`,
      );
    });
}
