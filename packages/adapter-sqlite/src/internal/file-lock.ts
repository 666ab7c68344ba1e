import { readFile, rm, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { CvError } from "@centrovision/core";
import { fileError } from "../sqlite-errors.js";
import { FILE_MODE } from "./disk.js";

interface LockHolder {
  pid: number;
  host: string;
  since: string;
}

/** Lock files this process holds, so a second source on the same file in one process is refused too. */
const held = new Set<string>();

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to another user.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function readHolder(path: string): Promise<LockHolder | null> {
  try {
    const parsed = JSON.parse(await readFile(path, "utf8")) as Partial<LockHolder>;
    if (typeof parsed.pid === "number" && typeof parsed.host === "string") {
      return { pid: parsed.pid, host: parsed.host, since: String(parsed.since) };
    }
    return null;
  } catch {
    // Unreadable or half-written: its writer died before finishing, so it holds nothing.
    return null;
  }
}

/**
 * Takes `<file>.lock` for this process. Two writers on one file would interleave their journals
 * and overwrite each other's snapshots, losing acknowledged writes; a second desktop window is
 * the realistic way this happens. A lock left by a process that died (kill -9, power cut) is
 * taken over, since its owner can no longer write.
 *
 * @returns a function that releases the lock.
 * @throws CvError `unavailable` naming the process that holds the file.
 */
export async function acquireLock(path: string, file: string): Promise<() => Promise<void>> {
  if (held.has(path)) {
    throw new CvError(
      "unavailable",
      `[adapter-sqlite] ${file} is already open in this process; close it first`,
    );
  }
  const host = hostname();
  const mine: LockHolder = { pid: process.pid, host, since: new Date().toISOString() };
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await writeFile(path, JSON.stringify(mine), { flag: "wx", mode: FILE_MODE });
      held.add(path);
      return async () => {
        held.delete(path);
        await rm(path, { force: true });
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST")
        throw fileError(error, path, "create the lock file");
    }
    const holder = await readHolder(path);
    if (holder && holder.host !== host) {
      throw new CvError(
        "unavailable",
        `[adapter-sqlite] ${file} is in use by process ${holder.pid} on ${holder.host} since ${holder.since}; ` +
          `if that computer no longer uses it, delete ${path}`,
      );
    }
    if (holder && holder.pid !== process.pid && isAlive(holder.pid)) {
      throw new CvError(
        "unavailable",
        `[adapter-sqlite] ${file} is in use by process ${holder.pid} on this computer since ${holder.since}`,
      );
    }
    await rm(path, { force: true });
  }
  throw new CvError(
    "unavailable",
    `[adapter-sqlite] cannot take the lock ${path}: another process keeps taking it`,
  );
}
