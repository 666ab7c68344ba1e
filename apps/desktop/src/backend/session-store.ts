import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from "node:crypto";
import { mkdir, open, readFile, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { CvError } from "@centrovision/core";

/*
 * The PC's sign-in secrets at rest: the supabase-js session and the offline sign-in verifiers,
 * each in its own file next to the SQLite database, AES-256-GCM under a key derived from the
 * database's key. Whoever can read the files but not the key (a backup, a copied folder) learns
 * nothing, not even which accounts signed in here.
 */

const FORMAT = 1;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

/**
 * The key of the session files: HKDF-SHA256 over the SQLite key with its own `info`, so the
 * database key itself never encrypts anything else and the two cannot be swapped.
 */
export function deriveSessionKey(sqliteKey: Uint8Array): Buffer {
  return Buffer.from(hkdfSync("sha256", sqliteKey, Buffer.alloc(0), "centrovision session", 32));
}

/** The files beside `clinic.cvdb`: `clinic.cvdb.session` and `clinic.cvdb.signins`. */
export function sessionPaths(sqlitePath: string): { session: string; verifiers: string } {
  return { session: `${sqlitePath}.session`, verifiers: `${sqlitePath}.signins` };
}

/** Runs the works it is given one at a time, in call order; a failure does not stop the next. */
export function oneAtATime(): <T>(work: () => Promise<T>) => Promise<T> {
  let queue: Promise<unknown> = Promise.resolve();
  return (work) => {
    const run = queue.then(work);
    queue = run.catch(() => {});
    return run;
  };
}

/** One JSON document kept encrypted in one file. */
export interface EncryptedFile<T> {
  readonly path: string;
  /**
   * The document, or null when the file does not exist.
   * @throws CvError `unauthorized` when the file is not ours to read (another key, damaged).
   */
  read(): Promise<T | null>;
  /**
   * Replaces the document: a temp file (0600) is written and fsync'd, then renamed over the old
   * one, so a crash leaves the old or the new document, never half of one. Writes run one at a
   * time, in call order.
   */
  write(value: T): Promise<void>;
}

async function syncFolder(folder: string): Promise<void> {
  // A rename is durable only once its folder is; Windows cannot open a folder for this.
  if (process.platform === "win32") return;
  const handle = await open(folder, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * `purpose` is bound to the ciphertext (GCM additional data): the verifier file renamed over the
 * session file fails to decrypt instead of being read as a session.
 */
export function encryptedFile<T>(path: string, key: Buffer, purpose: string): EncryptedFile<T> {
  const aad = Buffer.from(`centrovision ${purpose} v${FORMAT}`);
  const serial = oneAtATime();

  const seal = (value: T): Buffer => {
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv("aes-256-gcm", key, nonce).setAAD(aad);
    const body = Buffer.concat([cipher.update(JSON.stringify(value), "utf8"), cipher.final()]);
    return Buffer.concat([Buffer.of(FORMAT), nonce, cipher.getAuthTag(), body]);
  };

  const unreadable = () =>
    new CvError(
      "unauthorized",
      `[desktop] ${path} cannot be decrypted with this PC's key (another key, or a damaged file); it is ignored and sign-in starts afresh`,
    );

  const unseal = (bytes: Buffer): T => {
    if (bytes.length < 1 + NONCE_BYTES + TAG_BYTES || bytes[0] !== FORMAT) throw unreadable();
    const nonce = bytes.subarray(1, 1 + NONCE_BYTES);
    const tag = bytes.subarray(1 + NONCE_BYTES, 1 + NONCE_BYTES + TAG_BYTES);
    try {
      const decipher = createDecipheriv("aes-256-gcm", key, nonce).setAAD(aad).setAuthTag(tag);
      const text = Buffer.concat([
        decipher.update(bytes.subarray(1 + NONCE_BYTES + TAG_BYTES)),
        decipher.final(),
      ]);
      return JSON.parse(text.toString("utf8")) as T;
    } catch {
      throw unreadable();
    }
  };

  const replace = async (value: T) => {
    const folder = dirname(path);
    await mkdir(folder, { recursive: true, mode: 0o700 });
    const temp = join(folder, `.${basename(path)}.${randomBytes(6).toString("hex")}.tmp`);
    try {
      const handle = await open(temp, "wx", 0o600);
      try {
        await handle.writeFile(seal(value));
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, path);
    } catch (error) {
      await rm(temp, { force: true });
      throw new CvError("unavailable", `[desktop] cannot write ${path}`, { cause: error });
    }
    await syncFolder(folder);
  };

  return {
    path,
    async read() {
      const bytes = await readFile(path).catch((error: NodeJS.ErrnoException) => {
        if (error.code === "ENOENT") return null;
        throw new CvError("unavailable", `[desktop] cannot read ${path} (${error.code})`);
      });
      return bytes === null ? null : unseal(bytes);
    },
    write: (value) => serial(() => replace(value)),
  };
}
