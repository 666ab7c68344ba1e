import { type FileHandle, open, stat } from "node:fs/promises";
import { CvError, isCvError } from "@centrovision/core";
import { fileError } from "../sqlite-errors.js";
import type { AesKey } from "./cipher.js";
import { writeAll } from "./disk.js";
import { encodeRecord, type FileHeader } from "./file-format.js";
import type { JournalOp } from "./write-session.js";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A record's plaintext: the changes of one acknowledged write call. */
export function encodeOps(ops: readonly JournalOp[]): Uint8Array {
  return encoder.encode(JSON.stringify({ v: 1, ops }));
}

export function decodeOps(payload: Uint8Array): JournalOp[] {
  const parsed = JSON.parse(decoder.decode(payload)) as { v?: unknown; ops?: unknown };
  if (parsed.v !== 1 || !Array.isArray(parsed.ops)) throw new TypeError("unknown journal record layout");
  return parsed.ops as JournalOp[];
}

/**
 * The append side of the journal of one generation. `append` resolves only after the record is
 * on stable storage (fdatasync), which is what makes an acknowledged write survive kill -9 and
 * a power cut. After a failure that leaves the file in an unknown state, the writer refuses
 * further appends (`broken`): like PostgreSQL after a failed fsync, it does not guess.
 */
export class JournalWriter {
  private brokenBy: CvError | null = null;

  private constructor(
    private readonly handle: FileHandle,
    readonly path: string,
    readonly header: FileHeader,
    private readonly key: AesKey,
    private length: number,
    private records: number,
  ) {}

  /** Opens an existing journal whose valid part ends at `length` with `records` records. */
  static async open(path: string, header: FileHeader, key: AesKey, length: number, records: number) {
    let handle: FileHandle;
    try {
      handle = await open(path, "r+");
    } catch (error) {
      throw fileError(error, path, "open");
    }
    return new JournalWriter(handle, path, header, key, length, records);
  }

  /** Bytes in the journal, header included: what the snapshot threshold is compared with. */
  get bytes(): number {
    return this.length;
  }

  get recordCount(): number {
    return this.records;
  }

  /** Why appends are refused, or null while the journal is healthy. */
  get broken(): CvError | null {
    return this.brokenBy;
  }

  /** Appends one record and waits until it is durable. */
  async append(payload: Uint8Array): Promise<void> {
    if (this.brokenBy) throw this.brokenBy;
    const frame = await encodeRecord(this.key, this.header, this.records + 1, payload);
    try {
      await writeAll(this.handle, frame, this.length);
    } catch (error) {
      await this.undoPartialWrite(error);
      throw fileError(error, this.path, "append to");
    }
    try {
      await this.handle.datasync();
    } catch (error) {
      // After a failed fsync the kernel may have dropped the dirty pages: whether the record
      // is on disk is unknown, so nothing may be appended after it.
      this.brokenBy = fileError(error, this.path, "flush");
      throw this.brokenBy;
    }
    this.length += frame.length;
    this.records += 1;
  }

  /** A partly written frame (disk full) is cut off, so the next record follows the last good one. */
  private async undoPartialWrite(cause: unknown): Promise<void> {
    try {
      await this.handle.truncate(this.length);
      await this.handle.datasync();
    } catch {
      this.brokenBy = fileError(cause, this.path, "append to");
    }
  }

  /**
   * Proves the journal is still where it was opened and the disk answers: a journal moved or
   * deleted under us would silently swallow every later write.
   */
  async check(): Promise<void> {
    if (this.brokenBy) throw this.brokenBy;
    try {
      const [onDisk, open] = await Promise.all([stat(this.path), this.handle.stat()]);
      if (onDisk.ino !== open.ino || onDisk.dev !== open.dev) {
        throw new CvError("unavailable", `[adapter-sqlite] ${this.path} was replaced by another file`);
      }
      await this.handle.datasync();
    } catch (error) {
      throw isCvError(error) ? error : fileError(error, this.path, "reach");
    }
  }

  /** Marks the journal unusable (a snapshot got past its point of no return and then failed). */
  poison(error: CvError): void {
    this.brokenBy ??= error;
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}
