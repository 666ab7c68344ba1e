/**
 * CPU time of the processes a measurement runs on: each PostgreSQL server (its postmaster and
 * every process it started), read from Linux's /proc, and this process. The bench's servers,
 * gateway and engine share the machine's cores, so a figure's wall time can be no less than
 * their CPU time spread over every core; printed beside it, that floor tells a slow schedule from
 * work the machine cannot do faster. Elsewhere than Linux nothing is measured.
 */
import { readdirSync, readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";

/** /proc counts CPU time in USER_HZ ticks, 100 a second on every architecture Linux exports. */
const TICKS_PER_SECOND = 100;

interface ProcessTicks {
  readonly parent: number;
  /** User and system ticks of the process itself. */
  readonly own: number;
  /** Those of its children that exited and it waited for (a postmaster reaps every backend). */
  readonly reaped: number;
}

/** Every process's ticks; undefined without /proc. */
function processTicks(): Map<number, ProcessTicks> | undefined {
  let pids: string[];
  try {
    pids = readdirSync("/proc").filter((name) => /^\d+$/.test(name));
  } catch {
    return undefined;
  }
  const all = new Map<number, ProcessTicks>();
  for (const pid of pids) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    } catch {
      continue; // exited since the listing
    }
    // The command name is in parentheses and may hold spaces: the fields follow its last ")".
    const fields = stat
      .slice(stat.lastIndexOf(")") + 2)
      .split(" ")
      .map(Number);
    all.set(Number(pid), {
      parent: fields[1] as number,
      own: (fields[11] as number) + (fields[12] as number),
      reaped: (fields[13] as number) + (fields[14] as number),
    });
  }
  return all;
}

/**
 * Ticks of `root`, its live children and the children it reaped: a postmaster's whole server, with
 * every backend that came and went (its time moves to the postmaster's count when it exits).
 */
function treeTicks(all: Map<number, ProcessTicks>, root: number): number {
  let ticks = (all.get(root)?.own ?? 0) + (all.get(root)?.reaped ?? 0);
  for (const p of all.values()) if (p.parent === root) ticks += p.own;
  return ticks;
}

/** The postmaster's pid of a PostgreSQL data directory (first line of postmaster.pid). */
export function postmasterPid(dataDir: string): number | undefined {
  try {
    const pid = Number(readFileSync(join(dataDir, "postmaster.pid"), "utf8").split("\n")[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

export interface CpuUse {
  /** Seconds of CPU each group used. */
  readonly seconds: Readonly<Record<string, number>>;
  /** Their sum. */
  readonly totalSeconds: number;
  /** Their sum over the machine's cores: the least wall time that work could take here. */
  readonly floorSeconds: number;
  readonly cores: number;
}

/**
 * Starts measuring the CPU time of each server (by its postmaster's pid: every process it starts
 * is counted, those that exit too) and of this process alone, as `self`. `stop(extra)` adds
 * times measured otherwise (a child process's own count); it is undefined where /proc is not.
 */
export function cpuMeter(
  servers: Readonly<Record<string, number | undefined>>,
  self: string,
): { stop(extra?: Readonly<Record<string, number>>): CpuUse | undefined } {
  const before = processTicks();
  const selfBefore = process.cpuUsage();
  return {
    stop(extra = {}) {
      const after = processTicks();
      const selfUsed = process.cpuUsage(selfBefore);
      if (before === undefined || after === undefined) return undefined;
      const seconds: Record<string, number> = {};
      for (const [name, root] of Object.entries(servers)) {
        if (root !== undefined)
          seconds[name] = (treeTicks(after, root) - treeTicks(before, root)) / TICKS_PER_SECOND;
      }
      seconds[self] = (selfUsed.user + selfUsed.system) / 1e6;
      Object.assign(seconds, extra);
      const cores = availableParallelism();
      const total = Object.values(seconds).reduce((sum, s) => sum + s, 0);
      return { seconds, totalSeconds: total, floorSeconds: total / cores, cores };
    },
  };
}

/** "CPU: clinic 0.97 s, cloud 0.48 s, …: 1.86 s, 0.93 s on each of 2 cores". */
export function describeCpu(use: CpuUse): string {
  const parts = Object.entries(use.seconds).map(([name, s]) => `${name} ${s.toFixed(2)} s`);
  return `CPU: ${parts.join(", ")}: ${use.totalSeconds.toFixed(2)} s, ${use.floorSeconds.toFixed(2)} s on each of ${use.cores} cores`;
}
