// CPU time of processes as Linux accounts it (/proc/<pid>/stat), for the fleet bench: a daemon
// (its bin and the node it re-executes), a PostgreSQL server (the postmaster and its backends,
// including those that exited: their time moves to the postmaster when it reaps them), or one
// process alone (the cloud's gateway).
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

const TICKS_PER_S = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;

/** Every process: pid → state, parent, command name, own CPU ticks, and ticks of its reaped children. */
function processTable() {
  const table = new Map();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let text;
    try {
      text = readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue; // exited since the listing
    }
    // The command name is in parentheses and may hold spaces; fields 3… follow the last ")".
    const close = text.lastIndexOf(")");
    const fields = text.slice(close + 2).split(" ");
    table.set(Number(entry), {
      state: fields[0],
      ppid: Number(fields[1]),
      comm: text.slice(text.indexOf("(") + 1, close),
      own: Number(fields[11]) + Number(fields[12]),
      reaped: Number(fields[13]) + Number(fields[14]),
    });
  }
  return table;
}

/** The pids of `pid` and of every live process below it. */
function tree(table, pid) {
  const found = [pid];
  for (let i = 0; i < found.length; i++) {
    for (const [child, { ppid }] of table) if (ppid === found[i]) found.push(child);
  }
  return found.filter((member) => table.has(member));
}

/** CPU seconds of `pid` and everything below it, exited descendants included; 0 once it is gone. */
export function treeCpuSeconds(pid) {
  const table = processTable();
  const ticks = tree(table, pid).reduce((sum, member) => {
    const { own, reaped } = table.get(member);
    return sum + own + reaped;
  }, 0);
  return ticks / TICKS_PER_S;
}

/** CPU seconds of `pid` alone (not its children); 0 once it is gone. */
export function ownCpuSeconds(pid) {
  return (processTable().get(pid)?.own ?? 0) / TICKS_PER_S;
}

/** The pid of the PostgreSQL server (postmaster) `parent` started, or undefined. */
export function postmasterOf(parent) {
  for (const [pid, { ppid, comm }] of processTable()) if (ppid === parent && comm === "postgres") return pid;
  return undefined;
}

/** `pid` and every live process below it. */
export function treePids(pid) {
  return tree(processTable(), pid);
}

/** Those of `pids` still running (an exited process its parent has not reaped yet is not), with their names. */
export function alive(pids) {
  const table = processTable();
  return pids
    .filter((pid) => table.has(pid) && table.get(pid).state !== "Z")
    .map((pid) => ({ pid, comm: table.get(pid).comm }));
}
