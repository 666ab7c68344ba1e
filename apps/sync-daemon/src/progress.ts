import type { SyncProgress } from "@centrovision/sync-engine";
import type { Logger } from "./logger.js";

export interface ProgressReporter {
  report(progress: SyncProgress): void;
  /** Ends the bar's line after a cycle. */
  done(): void;
}

function describe(progress: SyncProgress): string {
  const what = progress.stage === "snapshot" ? `copying ${progress.table ?? "rows"}` : "replaying changes";
  return `${progress.direction} ${what}`;
}

/**
 * Long initial syncs and replays: a progress bar on a terminal, a log line every `intervalS`
 * otherwise (systemd's journal must not fill with carriage returns).
 */
export function createProgressReporter(
  logger: Logger,
  intervalS: number,
  stream: NodeJS.WriteStream = process.stderr,
): ProgressReporter {
  let lastLogAt = 0;
  let drawn = false;
  return {
    report(progress) {
      if (progress.event !== "applied") return;
      if (stream.isTTY) {
        const width = 30;
        const total = progress.total;
        const fraction = total ? Math.min(1, progress.rowsDone / total) : undefined;
        const bar =
          fraction === undefined
            ? ""
            : `[${"#".repeat(Math.round(fraction * width)).padEnd(width, ".")}] ${Math.round(fraction * 100)}% `;
        const count = total ? `${progress.rowsDone}/${total}` : `${progress.rowsDone}`;
        stream.write(`\r\x1b[2K${describe(progress)} ${bar}${count}`);
        drawn = true;
        return;
      }
      const now = Date.now();
      if (now - lastLogAt < intervalS * 1000) return;
      lastLogAt = now;
      logger.info(
        {
          direction: progress.direction,
          stage: progress.stage,
          table: progress.table,
          rowsDone: progress.rowsDone,
          total: progress.total,
        },
        `sync progress: ${describe(progress)}, ${progress.rowsDone}${progress.total ? ` of ${progress.total}` : ""} done`,
      );
    },
    done() {
      if (drawn) stream.write("\n");
      drawn = false;
    },
  };
}
