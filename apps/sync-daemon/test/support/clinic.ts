import { randomUUID } from "node:crypto";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { asClinicPerson, clinicSession } from "@centrovision/testkit";
import postgres from "postgres";
import { afterAll, afterEach, beforeAll, beforeEach, inject } from "vitest";
import { createNodeCredential } from "../../src/node-create.js";
import { runCli } from "./cli.js";

export interface ConfigOverrides {
  password?: string;
  httpPort?: number;
  /** Leave `admin_url` out (init then takes it on the command line). */
  noAdmin?: boolean;
  /** Extra lines in `[sync]`. */
  sync?: string;
  /** Another cloud than the run's shared one, with a node credential made there ({@link createTestNode}). */
  cloud?: TestCloud;
  /** Another login than the clinic's node credential (e.g. a user that is not a node). */
  node?: { email: string; password: string };
}

/** A cloud and a node credential on it, as a clinic's config names them. */
export interface TestCloud {
  readonly url: string;
  readonly anonKey: string;
  readonly node: { readonly email: string; readonly password: string };
}

/**
 * A node credential on `cloud`, made by the code `centrovision-sync node create` runs; holding
 * every branch unless `branches` names them.
 */
export async function createTestNode(
  cloud: { url: string; anonKey: string; serviceRoleKey: string },
  name: string,
  branches: readonly string[] | "all" = "all",
): Promise<TestCloud> {
  const node = await createNodeCredential({
    cloudUrl: cloud.url,
    serviceRoleKey: cloud.serviceRoleKey,
    name,
    branches,
  });
  return { url: cloud.url, anonKey: cloud.anonKey, node };
}

/** A clinic server for one test: its own database, login, config directory and secret files. */
export interface TestClinic {
  readonly dir: string;
  readonly configPath: string;
  readonly database: string;
  readonly user: string;
  /** The superuser URL of the clinic database, without password (file `admin_password` in `dir`). */
  readonly adminUrl: string;
  /** Superuser connection to the clinic database (bypasses the daemon). */
  readonly sql: postgres.Sql;
  /** Superuser connection to the cloud database. */
  readonly cloudSql: postgres.Sql;
  /** The clinic's node credential on the run's cloud (its password also in file `node_password`). */
  readonly node: TestCloud["node"];
  /** Rewrites sync.toml (mode 0600) with `extra` TOML appended. */
  writeConfig(extra?: string, overrides?: ConfigOverrides): void;
  /** A PC's login on the clinic server (in role centrovision_app), as a URL with its password; dropped by `close()`. */
  pcLogin(): Promise<string>;
  /** A connection as a PC login acting as `userId`, with a clinic session the clinic's key signed; ended by `close()`. */
  asPerson(userId: string): Promise<postgres.Sql>;
  close(): Promise<void>;
}

const secret = (dir: string, name: string, value: string) => {
  const path = join(dir, name);
  writeFileSync(path, `${value}\n`, { mode: 0o600 });
  chmodSync(path, 0o600);
  return path;
};

/** `branches`: the ids of the branches its node credential holds (default: every branch). */
export async function createTestClinic(branches: readonly string[] | "all" = "all"): Promise<TestClinic> {
  const admin = new URL(inject("postgresUrl"));
  const tag = randomUUID().slice(0, 8);
  const cloud = await createTestNode(inject("cloud"), `clinic-${tag}`, branches);
  const database = `clinic_${tag}`;
  const user = `cv_daemon_${tag}`;
  const password = `pw-${randomUUID()}`;
  const root = postgres(admin.href, { max: 1, onnotice: () => {} });
  await root.unsafe(`create database "${database}"`);
  await root.end();
  admin.pathname = `/${database}`;
  const sql = postgres(admin.href, { max: 2, onnotice: () => {} });
  const cloudSql = postgres(inject("cloud").dbUrl, { max: 2, onnotice: () => {} });
  const dir = mkdtempSync(join(tmpdir(), "cv-sync-daemon-"));
  chmodSync(dir, 0o700);
  const adminPassword = decodeURIComponent(admin.password);
  secret(dir, "admin_password", adminPassword);
  const configPath = join(dir, "sync.toml");
  const clinicUrl = new URL(admin.href);
  clinicUrl.username = user;
  clinicUrl.password = "";
  const adminUrl = new URL(admin.href);
  adminUrl.password = "";
  const writeConfig = (extra = "", overrides: ConfigOverrides = {}) => {
    secret(dir, "db_password", overrides.password ?? password);
    const target = overrides.cloud ?? cloud;
    const node = overrides.node ?? target.node;
    secret(dir, "node_password", node.password);
    const text = `# test clinic ${tag}
[node]
name = "clinic-${tag}"

[cloud]
url = "${target.url}"
anon_key = "${target.anonKey}"
node_email = "${node.email}"
node_password_file = "node_password"
timeout_ms = 10000

[clinic]
url = "${clinicUrl.href}"
password_file = "db_password"
${overrides.noAdmin ? "" : `admin_url = "${adminUrl.href}"\nadmin_password_file = "admin_password"`}
timeout_ms = 10000

[sync]
interval_ms = 1000
min_backoff_ms = 200
max_backoff_ms = 1000
${overrides.sync ?? ""}

[http]
port = ${overrides.httpPort ?? 0}

[log]
progress_interval_s = 1
${extra}`;
    writeFileSync(configPath, text, { mode: 0o600 });
    chmodSync(configPath, 0o600);
  };
  writeConfig();
  const pcLogins: string[] = [];
  const people: postgres.Sql[] = [];
  const pcLogin = async () => {
    const pc = `cv_pc_${randomUUID().slice(0, 8)}`;
    const pcPassword = `pc-${randomUUID()}`;
    await sql.unsafe(`create role "${pc}" login password '${pcPassword}' in role centrovision_app`);
    pcLogins.push(pc);
    const url = new URL(admin.href);
    url.username = pc;
    url.password = pcPassword;
    return url.href;
  };
  return {
    dir,
    configPath,
    database,
    user,
    adminUrl: adminUrl.href,
    sql,
    cloudSql,
    node: cloud.node,
    writeConfig,
    pcLogin,
    async asPerson(userId) {
      const token = await clinicSession(admin.href, { userId });
      const person = postgres(await pcLogin(), {
        max: 1,
        onnotice: () => {},
        connection: asClinicPerson(token),
      });
      people.push(person);
      return person;
    },
    async close() {
      await Promise.all([sql.end(), cloudSql.end(), ...people.map((person) => person.end())]);
      const root = postgres(inject("postgresUrl"), { max: 1, onnotice: () => {} });
      await root.unsafe(`drop database if exists "${database}" with (force)`);
      for (const role of [user, ...pcLogins]) await root.unsafe(`drop role if exists "${role}"`);
      await root.end();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A fresh clinic per test (`each`) or per file (`all`), closed after it, and `cli(...)` running the
 * real bin with its config. Read `current()` inside tests and hooks only.
 */
export function useTestClinic(scope: "each" | "all") {
  let clinic: TestClinic | undefined;
  const current = (): TestClinic => {
    if (!clinic) throw new Error("useTestClinic: no clinic outside a test");
    return clinic;
  };
  (scope === "each" ? beforeEach : beforeAll)(async () => {
    clinic = await createTestClinic();
  });
  (scope === "each" ? afterEach : afterAll)(async () => {
    await clinic?.close();
  });
  return {
    current,
    cli: (...args: string[]) => runCli(["--config", current().configPath, ...args]),
  };
}
