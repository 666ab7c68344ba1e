import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, open, readFile, stat } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { CvError, parseConfig } from "@centrovision/core";
import * as z from "zod";

const KEY_BYTES = 32;

export const sqliteKeyOptionsSchema = z
  .object({
    /** Key file used when no OS keychain answers: 32 raw bytes, mode 0600, outside the database folder. */
    keyFile: z
      .string()
      .min(1, "must name the key file")
      .transform((value) => resolve(value)),
    /** `auto`: the OS keychain when one answers (libsecret's `secret-tool`, macOS `security`), else the file. */
    keychain: z.enum(["auto", "off"]).default("auto"),
    /** Keychain entry: service name… */
    service: z.string().min(1).default("centrovision-continuity"),
    /** …and account (e.g. the database file's name, one key per file). */
    account: z.string().min(1).default("local-database"),
  })
  .strict();

export type SqliteKeyOptions = z.input<typeof sqliteKeyOptionsSchema>;

/** Where the key came from, and whether it was made just now (a new, empty database follows). */
export interface SqliteKey {
  readonly key: Uint8Array<ArrayBuffer>;
  readonly from: "keychain" | "file";
  readonly created: boolean;
}

interface Keychain {
  lookup(service: string, account: string): Promise<string | null>;
  store(service: string, account: string, secret: string): Promise<void>;
}

function run(command: string, args: readonly string[], input?: string): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const child = execFile(command, args, { timeout: 10_000 }, (error, stdout) =>
      error ? reject(error) : resolvePromise(stdout),
    );
    if (input !== undefined) child.stdin?.end(input);
  });
}

/**
 * The OS keychain tool of this platform, or null. Whether it answers (tool installed, session
 * bus, unlocked keyring) is learnt by using it: a failed store falls back to the key file.
 */
function findKeychain(): Keychain | null {
  if (process.platform === "linux") {
    return {
      lookup: (service, account) =>
        run("secret-tool", ["lookup", "service", service, "account", account]).then(
          (out) => out.trim() || null,
          // secret-tool exits 1 both for "no such secret" and for a locked keyring: treated alike.
          () => null,
        ),
      store: async (service, account, secret) => {
        await run(
          "secret-tool",
          ["store", "--label=CentroVision local database key", "service", service, "account", account],
          secret,
        );
      },
    };
  }
  if (process.platform === "darwin") {
    return {
      lookup: (service, account) =>
        run("security", ["find-generic-password", "-s", service, "-a", account, "-w"]).then(
          (out) => out.trim() || null,
          () => null,
        ),
      store: async (service, account, secret) => {
        await run("security", ["add-generic-password", "-s", service, "-a", account, "-w", secret]);
      },
    };
  }
  return null;
}

function decodeKey(text: string, where: string): Uint8Array<ArrayBuffer> {
  const bytes = Buffer.from(text, "base64");
  if (bytes.byteLength !== KEY_BYTES) {
    throw new CvError(
      "invalid_config",
      `[adapter-sqlite] the key in ${where} is not a ${KEY_BYTES}-byte key; restore the right entry or remove it to start a new, empty local database`,
    );
  }
  return new Uint8Array(bytes);
}

async function fromKeychain(keychain: Keychain, service: string, account: string): Promise<SqliteKey | null> {
  const where = `the OS keychain (service ${service}, account ${account})`;
  const found = await keychain.lookup(service, account);
  if (found !== null) return { key: decodeKey(found, where), from: "keychain", created: false };
  const key = new Uint8Array(randomBytes(KEY_BYTES));
  try {
    await keychain.store(service, account, Buffer.from(key).toString("base64"));
  } catch {
    return null;
  }
  // Read back: a keyring that accepted the secret but cannot return it must not be trusted with it.
  const stored = await keychain.lookup(service, account);
  return stored === null ? null : { key: decodeKey(stored, where), from: "keychain", created: true };
}

async function fromFile(keyFile: string): Promise<SqliteKey> {
  const info = await stat(keyFile).catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT") return null;
    throw new CvError("unavailable", `[adapter-sqlite] cannot read the key file ${keyFile} (${error.code})`);
  });
  if (info === null) {
    await mkdir(dirname(keyFile), { recursive: true, mode: 0o700 });
    const key = new Uint8Array(randomBytes(KEY_BYTES));
    // "wx": two processes starting at once cannot both create (and overwrite) the key.
    const handle = await open(keyFile, "wx", 0o600);
    try {
      await handle.writeFile(key);
      await handle.sync();
    } finally {
      await handle.close();
    }
    return { key, from: "file", created: true };
  }
  if (process.platform !== "win32" && (info.mode & 0o077) !== 0) {
    const mode = (info.mode & 0o777).toString(8).padStart(3, "0");
    throw new CvError(
      "invalid_config",
      `[adapter-sqlite] the key file ${keyFile} can be read by other users (mode ${mode}); ` +
        `restrict it with "chmod 600 ${keyFile}" (owner only) and start again`,
    );
  }
  const bytes = await readFile(keyFile);
  if (bytes.byteLength !== KEY_BYTES) {
    throw new CvError(
      "invalid_config",
      `[adapter-sqlite] the key file ${keyFile} holds ${bytes.byteLength} bytes, not a ${KEY_BYTES}-byte key; restore it from the backup of the key`,
    );
  }
  return { key: new Uint8Array(bytes), from: "file", created: false };
}

/**
 * The local database's key: from the OS keychain where one answers (libsecret `secret-tool` on
 * Linux, `security` on macOS), otherwise from `keyFile` (created with mode 0600 when missing).
 * A key file that other users can read is refused, not used.
 *
 * @throws CvError `invalid_config` for a key file others can read or that is not a key.
 */
export async function loadSqliteKey(options: SqliteKeyOptions): Promise<SqliteKey> {
  const { keyFile, keychain, service, account } = parseConfig(
    "[adapter-sqlite] invalid key options",
    sqliteKeyOptionsSchema,
    options,
  );
  // An existing key file wins: the database was created with it, a new keychain key would not open it.
  const fileExists = await stat(keyFile).then(
    () => true,
    () => false,
  );
  if (keychain === "auto" && !fileExists) {
    const os = findKeychain();
    const found = os && (await fromKeychain(os, service, account));
    if (found) return found;
  }
  return fromFile(keyFile);
}
