import { type FileHandle, open, readFile, rm } from "node:fs/promises";

/** Owner read/write only: the files hold (encrypted) patient data. */
export const FILE_MODE = 0o600;

/** Writes all of `data` at `position`; a single `write` may write less than asked. */
export async function writeAll(handle: FileHandle, data: Uint8Array, position: number): Promise<void> {
  let written = 0;
  while (written < data.length) {
    const { bytesWritten } = await handle.write(data, written, data.length - written, position + written);
    written += bytesWritten;
  }
}

/**
 * Creates `path` afresh with `chunks` and fsyncs it before resolving, so a later rename publishes
 * complete bytes. Any leftover at `path` (from a crash mid-write) is removed first.
 */
export async function writeFileDurably(path: string, chunks: readonly Uint8Array[]): Promise<void> {
  await rm(path, { force: true });
  const handle = await open(path, "wx", FILE_MODE);
  try {
    let position = 0;
    for (const chunk of chunks) {
      await writeAll(handle, chunk, position);
      position += chunk.length;
    }
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Makes renames and creations in `dir` durable. Without it, a power cut after `rename` can bring
 * back the old directory entry. Windows cannot open a directory for flushing; NTFS journals
 * its metadata, so there is nothing to do there.
 */
export async function syncDirectory(dir: string): Promise<void> {
  if (process.platform === "win32") return;
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** The file's bytes, or null when it does not exist. */
export async function readIfExists(path: string): Promise<Uint8Array | null> {
  try {
    return await readFile(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw error;
  }
}
