import { CvError, parseConnectionStatus } from "@centrovision/core/shared";
import { SnapshotStore } from "./internal/snapshot-store.js";
import type { StatusSource } from "./status-source.js";
import { asError } from "./ui-error.js";

/** A command transport shaped like `@tauri-apps/api`'s `invoke` (Tauri's own function fits as is). */
export type InvokeFn = (command: string, args?: Record<string, unknown>) => Promise<unknown>;

export interface InvokeStatusSourceOptions {
  invoke: InvokeFn;
  /** Pause between the end of one status read and the start of the next. Default 2000 ms. */
  intervalMs?: number;
  /** A status read that takes longer fails with `timeout`. Default 5000 ms. */
  timeoutMs?: number;
  /** Default `get_connection_status`. */
  statusCommand?: string;
  /** Runs one sync cycle on the backend. Default `trigger_sync`. */
  syncCommand?: string;
}

function checkOptions(options: InvokeStatusSourceOptions): void {
  const problems: string[] = [];
  if (typeof options.invoke !== "function")
    problems.push("invoke must be a function (command, args) => Promise");
  for (const key of ["intervalMs", "timeoutMs"] as const) {
    const value = options[key];
    if (value !== undefined && !(Number.isInteger(value) && value >= 100)) {
      problems.push(`${key} must be a whole number of milliseconds ≥ 100`);
    }
  }
  for (const key of ["statusCommand", "syncCommand"] as const) {
    const value = options[key];
    if (value !== undefined && (typeof value !== "string" || value === "")) {
      problems.push(`${key} must be a non-empty command name`);
    }
  }
  if (problems.length > 0) {
    throw new CvError("invalid_config", `[ui-react] createInvokeStatusSource: ${problems.join("; ")}`);
  }
}

/**
 * Polls the backend's status command while anything is subscribed, one read at a time (a slow
 * backend is never asked again before it answered), and stops when the last subscriber leaves.
 */
export function createInvokeStatusSource(options: InvokeStatusSourceOptions): StatusSource {
  checkOptions(options);
  const { invoke } = options;
  const intervalMs = options.intervalMs ?? 2000;
  const timeoutMs = options.timeoutMs ?? 5000;
  const statusCommand = options.statusCommand ?? "get_connection_status";
  const syncCommand = options.syncCommand ?? "trigger_sync";
  const store = new SnapshotStore();
  let inFlight: Promise<void> | null = null;
  let timer: ReturnType<typeof setTimeout> | undefined;
  // Bumped on every start and stop, so a read still in flight from a stopped loop schedules nothing.
  let loop = 0;

  const read = async (): Promise<void> => {
    let deadline: ReturnType<typeof setTimeout> | undefined;
    const expired = new Promise<never>((_, reject) => {
      deadline = setTimeout(() => {
        reject(
          new CvError(
            "timeout",
            `[ui-react] ${statusCommand} did not answer within ${timeoutMs} ms; is the CentroVision backend running?`,
          ),
        );
      }, timeoutMs);
    });
    try {
      const value = await Promise.race([invoke(statusCommand), expired]);
      store.setStatus(parseConnectionStatus(value, `[ui-react] ${statusCommand}`));
    } catch (error) {
      store.setError(asError(error));
    } finally {
      clearTimeout(deadline);
    }
  };

  const refresh = (): Promise<void> => {
    inFlight ??= read().finally(() => {
      inFlight = null;
    });
    return inFlight;
  };

  const poll = (mine: number): void => {
    void refresh().then(() => {
      if (mine === loop) timer = setTimeout(poll, intervalMs, mine);
    });
  };

  return {
    getSnapshot: store.get,
    subscribe(onChange) {
      const remove = store.add(onChange);
      if (store.size === 1) poll(++loop);
      return () => {
        remove();
        if (store.size === 0) {
          loop += 1;
          clearTimeout(timer);
        }
      };
    },
    async triggerSync() {
      try {
        await invoke(syncCommand);
      } finally {
        await refresh();
      }
    },
    refresh,
  };
}
