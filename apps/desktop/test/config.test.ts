import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { chmod, copyFile, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { CvError } from "@centrovision/core";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { dayRange } from "../src/backend/day-range.js";
import { configPath, DEFAULT_CONFIG_PATH, loadDesktopConfig } from "../src/config.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "cv-desktop-config-"));
  await secret("secrets/db-password", "clinic-db-pw\n");
});
afterEach(() => rm(dir, { recursive: true, force: true }));

async function file(text: string, mode = 0o600): Promise<string> {
  return secret("config.toml", text, mode);
}

/** Writes `content` at `name` under the test's folder, with exactly `mode`. */
async function secret(name: string, content: string | Uint8Array, mode = 0o600): Promise<string> {
  const path = join(dir, name);
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, content);
  await chmod(path, mode);
  return path;
}

const APP = fileURLToPath(new URL("..", import.meta.url));

/** The desktop backend as `npm start` runs it, with `--config path`; resolves when it exits. */
async function startBackend(path: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(
    process.execPath,
    ["--conditions=@centrovision/source", "--import", "tsx", "src/backend/main.ts", "--config", path],
    { cwd: APP, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, CENTROVISION_CONFIG: "" } },
  );
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), 25_000);
  const [code] = (await once(child, "exit")) as [number | null];
  clearTimeout(timer);
  return { code, stdout, stderr };
}

function failure(run: () => unknown): CvError {
  try {
    run();
  } catch (error) {
    if (error instanceof CvError) return error;
    throw error;
  }
  throw new Error("expected a CvError");
}

const GOOD = `
branch_id = "6f0e0f7c-3f3e-4c2b-9d7e-1c2b3a4d5e6f"
[supabase]
url = "https://abcd.supabase.co"
anon_key = "anon"
[local_server]
url = "postgres://192.168.1.100:5432/centrovision"
user = "recepcion_pc1"
password_file = "secrets/db-password"
[sqlite]
path = "local/clinic.cvdb"
key_file = "/etc/centrovision/local.key"
[router]
holdDownMs = 20000
`;

describe("config.toml", () => {
  it("parses, fills defaults and resolves relative paths against the file's folder", async () => {
    const config = loadDesktopConfig(await file(GOOD));
    expect(config.server).toEqual({ host: "127.0.0.1", port: 1420 });
    expect(config.local_server?.password_file).toBe(join(dir, "secrets/db-password"));
    expect(config.sqlite).toEqual({
      path: join(dir, "local/clinic.cvdb"),
      key_file: "/etc/centrovision/local.key",
      keychain: "auto",
    });
    expect(config.router).toMatchObject({ holdDownMs: 20_000, rise: 3 });
    expect(config.session).toEqual({ offline_days: 7, lockout_attempts: 5, lockout_minutes: 15 });
    // Across the LAN the clinic server is reached over TLS, verified, by default.
    expect(config.local_server?.tls).toBe("verify-full");
  });

  it("keeps the clinic LAN encrypted: plain only on this PC, the CA a readable PEM, no sslmode in the URL", async () => {
    await writeFile(
      join(dir, "clinic-ca.pem"),
      "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    );
    await writeFile(join(dir, "not-a-cert.pem"), "hello");
    const lan = (extra: string, url = "postgres://192.168.1.100:5432/centrovision") =>
      file(
        GOOD.replace("postgres://192.168.1.100:5432/centrovision", url).replace(
          'password_file = "secrets/db-password"',
          `password_file = "secrets/db-password"\n${extra}`,
        ),
      );
    const pinned = loadDesktopConfig(await lan('ca_file = "clinic-ca.pem"'));
    expect(pinned.local_server).toMatchObject({ tls: "verify-full", ca_file: join(dir, "clinic-ca.pem") });
    expect(
      loadDesktopConfig(await lan('tls = "disable"', "postgres://127.0.0.1:5432/centrovision")).local_server
        ?.tls,
    ).toBe("disable");
    const problemsOf = async (extra: string, url?: string) => {
      const path = await lan(extra, url);
      return failure(() => loadDesktopConfig(path)).issues.map((issue) => `${issue.path}: ${issue.message}`);
    };
    expect(await problemsOf('tls = "disable"')).toEqual([
      'local_server.tls: may be "disable" only for a clinic server on this same PC (127.0.0.1): across the LAN use "verify-full" with ca_file',
    ]);
    expect(
      await problemsOf(
        'tls = "disable"\nca_file = "clinic-ca.pem"',
        "postgres://127.0.0.1:5432/centrovision",
      ),
    ).toEqual(['local_server.ca_file: is only used with tls = "verify-full"']);
    expect(await problemsOf('ca_file = "missing.pem"')).toEqual([
      `local_server.ca_file: cannot read ${join(dir, "missing.pem")} (ENOENT): copy clinic-ca.pem from the clinic server`,
    ]);
    expect(await problemsOf('ca_file = "not-a-cert.pem"')).toEqual([
      `local_server.ca_file: ${join(dir, "not-a-cert.pem")} holds no PEM certificate: copy clinic-ca.pem from the clinic server`,
    ]);
    expect(await problemsOf("", "postgres://192.168.1.100:5432/centrovision?sslmode=disable")).toEqual([
      "local_server.url: must not carry options (?sslmode=…): use tls and ca_file",
    ]);
  });

  it("refuses the session-token keys of earlier versions, saying sign-in replaces them, with every other problem", async () => {
    const path = await file(
      `${GOOD.replace('anon_key = "anon"', 'anon_key = "anon"\naccess_token = "eyJhbGciOi"\naccess_token_file = "session.jwt"')}\n[session]\noffline_days = 45\n`,
    );
    const refused = failure(() => loadDesktopConfig(path));
    expect(refused.code).toBe("invalid_config");
    expect(refused.issues.map((i) => i.path).sort()).toEqual([
      "session.offline_days",
      "supabase.access_token",
      "supabase.access_token_file",
    ]);
    expect(refused.issues.find((i) => i.path === "supabase.access_token")?.message).toMatch(
      /no longer read: staff sign in in the app/,
    );
    expect(refused.message).not.toMatch(/eyJhbGciOi|session\.jwt/);
  });

  it("lists every problem with its path, without echoing values", async () => {
    const missing = failure(() => loadDesktopConfig(join(dir, "missing.toml")));
    expect(missing.code).toBe("invalid_config");
    expect(missing.message).toMatch(
      /\(file\): cannot read the config file .*missing\.toml \(ENOENT\): create it or pass --config/,
    );
    const path = await file(
      `branch_id = "sucursal-centro"\n[supabase]\nurl = "ftp://x"\n[sqlite]\npath = ""\ncolour = "red"\n[router]\nfall = 0\n`,
    );
    const bad = failure(() => loadDesktopConfig(path));
    expect(bad.code).toBe("invalid_config");
    expect(bad.issues.map((i) => i.path).sort()).toEqual(
      [
        "branch_id",
        "router.fall",
        "sqlite.colour",
        "sqlite.key_file",
        "sqlite.path",
        "supabase.anon_key",
        "supabase.url",
      ].sort(),
    );
    expect(bad.message).not.toMatch(/sucursal-centro|ftp:\/\/x/);
  });

  it("refuses a config file other users can read, saying how to fix it, with every other problem", async () => {
    const open = await file(GOOD.replace("holdDownMs = 20000", "holdDownMs = -1"), 0o644);
    const refused = failure(() => loadDesktopConfig(open));
    expect(refused.code).toBe("invalid_config");
    expect(refused.issues.map((i) => `${i.path}: ${i.message}`)).toEqual([
      expect.stringMatching(/^\(file\): .*config\.toml is readable by others \(mode 0644\): run chmod 600 /),
      expect.stringMatching(/^router\.holdDownMs: /),
    ]);
    // Group-readable is refused too: on a PC no service group shares the file.
    await chmod(open, 0o640);
    expect(failure(() => loadDesktopConfig(open)).message).toMatch(/\(mode 0640\): run chmod 600/);
  });

  it("names a TOML syntax error's line, with the file's permissions", async () => {
    const broken = await file(`branch_id = "x"\n[supabase\n`, 0o604);
    expect(failure(() => loadDesktopConfig(broken)).issues.map((i) => i.message)).toEqual([
      expect.stringMatching(/readable by others \(mode 0604\)/),
      expect.stringMatching(/is not valid TOML \(line 2, column \d+\): fix the syntax there/),
    ]);
  });

  it("refuses, as the daemon does, a password in local_server.url and a password file that is missing, empty or readable by others", async () => {
    const inUrl = await file(
      GOOD.replace("postgres://192.168.1.100", "postgres://recepcion_pc1:hunter2-in-url@192.168.1.100"),
    );
    const url = failure(() => loadDesktopConfig(inUrl));
    expect(url.code).toBe("invalid_config");
    expect(url.issues).toEqual([
      {
        path: "local_server.url",
        message: "must not contain a password: put it in a file (password_file)",
      },
    ]);
    expect(url.message).not.toContain("hunter2");
    const issueOf = async (content: string | undefined, mode = 0o600) => {
      await rm(join(dir, "secrets/db-password"), { force: true });
      if (content !== undefined) await secret("secrets/db-password", content, mode);
      const refused = failure(() => loadDesktopConfig(join(dir, "config.toml")));
      expect(refused.code).toBe("invalid_config");
      expect(refused.message).not.toContain("clinic-db-pw");
      return refused.issues.map((i) => `${i.path}: ${i.message}`);
    };
    await file(GOOD);
    expect(await issueOf("clinic-db-pw\n", 0o644)).toEqual([
      `local_server.password_file: ${join(dir, "secrets/db-password")} is readable by others (mode 0644): run chmod 600 ${join(dir, "secrets/db-password")}`,
    ]);
    expect(await issueOf("clinic-db-pw\n", 0o640)).toEqual([
      expect.stringMatching(/^local_server\.password_file: .* is readable by others \(mode 0640\)/),
    ]);
    expect(await issueOf("  \n")).toEqual([
      expect.stringMatching(
        /^local_server\.password_file: .*db-password is empty: write the clinic server password in it$/,
      ),
    ]);
    expect(await issueOf(undefined)).toEqual([
      expect.stringMatching(
        /^local_server\.password_file: cannot read .*db-password \(ENOENT\): create it, owner-only \(chmod 600\)$/,
      ),
    ]);
  });

  it("checks an existing sqlite.key_file (owner-only, a 32-byte key, not the database) and lets a missing one be created", async () => {
    const keyed = (key: string) =>
      file(GOOD.replace('key_file = "/etc/centrovision/local.key"', `key_file = "${key}"`));
    await keyed("keys/local.key");
    expect(loadDesktopConfig(join(dir, "config.toml")).sqlite.key_file).toBe(join(dir, "keys/local.key"));
    await secret("keys/local.key", new Uint8Array(32), 0o644);
    expect(failure(() => loadDesktopConfig(join(dir, "config.toml"))).issues).toEqual([
      {
        path: "sqlite.key_file",
        message: expect.stringMatching(/local\.key is readable by others \(mode 0644\): run chmod 600/),
      },
    ]);
    await secret("keys/local.key", new Uint8Array(31));
    expect(failure(() => loadDesktopConfig(join(dir, "config.toml"))).issues).toEqual([
      {
        path: "sqlite.key_file",
        message: expect.stringMatching(/holds 31 bytes, not a 32-byte key: restore it from the backup/),
      },
    ]);
    await keyed("local/clinic.cvdb");
    expect(failure(() => loadDesktopConfig(join(dir, "config.toml"))).issues).toEqual([
      { path: "sqlite.key_file", message: "is the database itself: name a separate key file" },
    ]);
  });

  it('warns on stderr, without a path, when keychain = "off" keeps the key file in the database\'s folder', async () => {
    const write = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    try {
      const setting = (key: string, keychain: string) =>
        file(
          GOOD.replace(
            'key_file = "/etc/centrovision/local.key"',
            `key_file = "${key}"\nkeychain = "${keychain}"`,
          ),
        );
      const warnings = (path: string) => {
        write.mockClear();
        loadDesktopConfig(path);
        return write.mock.calls.map(([chunk]) => String(chunk));
      };
      expect(warnings(await setting("local/clinic.key", "off"))).toEqual([
        expect.stringMatching(
          /^\[desktop\] warning: .*config\.toml: sqlite\.key_file: the key file sits in the local database's folder, .*move it elsewhere .*or set keychain = "auto"\n$/,
        ),
      ]);
      expect(warnings(await setting("local/keys/clinic.key", "off"))).toHaveLength(1);
      expect(write.mock.calls.join("")).not.toMatch(/clinic\.key|local\/keys/);
      expect(warnings(await setting("keys/clinic.key", "off"))).toEqual([]);
      expect(warnings(await setting("local/clinic.key", "auto"))).toEqual([]);
    } finally {
      write.mockRestore();
    }
  });

  it("is found through --config, then CENTROVISION_CONFIG, then ~/.centrovision/config.toml", () => {
    expect(configPath(["--config", "/etc/cv.toml"], { CENTROVISION_CONFIG: "/x.toml" })).toBe("/etc/cv.toml");
    expect(configPath([], { CENTROVISION_CONFIG: "/x.toml" })).toBe("/x.toml");
    expect(configPath([], {})).toBe(DEFAULT_CONFIG_PATH);
    expect(failure(() => configPath(["--config"], {})).message).toMatch(/--config needs a path/);
  });
});

describe("the PCs' config setup-server.sh writes (apps/sync-daemon/deploy)", () => {
  const deploy = (name: string) =>
    fileURLToPath(new URL(`../../sync-daemon/deploy/${name}`, import.meta.url));

  /** What `setup-server.sh --dry-run` shows it would write at `path`, unindented. */
  function shown(out: string, path: string): string {
    const lines = out.split("\n");
    const start = lines.findIndex((line) => line.startsWith(`would write ${path} (`) && line.endsWith(":"));
    expect(start, out).toBeGreaterThanOrEqual(0);
    const body: string[] = [];
    for (const line of lines.slice(start + 1)) {
      if (!line.startsWith("    ")) break;
      body.push(line.slice(4));
    }
    return `${body.join("\n")}\n`;
  }

  it("is accepted as written, once the IT person copies the folder to a PC", async () => {
    const branch = "0b5f1d4e-6a1c-4f7e-9a3b-2c8d7e6f5a41";
    const anonKey = await secret("anon_key", "sb_publishable_Test-anon.key_123\n");
    const run = spawnSync(
      "bash",
      [
        deploy("setup-server.sh"),
        "--dry-run",
        "--subnet",
        "192.168.10.0/24",
        "--server-address",
        "192.168.10.5",
        "--supabase-url",
        "https://abc.supabase.co",
        "--pc-branch-id",
        branch,
        "--anon-key-file",
        anonKey,
        "--clinic-name",
        "Clínica Roma",
        "--all-branches",
        "--service-role-key-file",
        anonKey,
      ],
      { encoding: "utf8", timeout: 30_000 },
    );
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).not.toContain("To do: fill in branch_id");
    // The three files of /etc/centrovision/clients/ in the PC's folder, owner-only.
    const path = await file(shown(run.stdout, "/etc/centrovision/clients/config.toml"));
    await secret("local_server_password", "pc-secret\n");
    const tls = spawnSync("bash", [deploy("make-clinic-tls.sh"), join(dir, "tls"), "192.168.10.5"], {
      encoding: "utf8",
    });
    expect(tls.status, tls.stderr).toBe(0);
    await copyFile(join(dir, "tls", "clinic-ca.pem"), join(dir, "clinic-ca.pem"));
    const warnings: string[] = [];
    const config = loadDesktopConfig(path, { warn: (message) => warnings.push(message) });
    expect(warnings).toEqual([]);
    expect(config).toMatchObject({
      branch_id: branch,
      supabase: { url: "https://abc.supabase.co", anon_key: "sb_publishable_Test-anon.key_123" },
      local_server: {
        url: "postgres://192.168.10.5:5432/centrovision",
        user: "centrovision_pc",
        password_file: join(dir, "local_server_password"),
        tls: "verify-full",
        ca_file: join(dir, "clinic-ca.pem"),
      },
      sqlite: { path: join(dir, "local.cvdb"), key_file: join(dir, "keys", "local.key") },
    });
  });
});

describe("the desktop backend with an invalid config", () => {
  it("lists schema, cross-field and file problems in one pass and exits 78, with no value and no stack trace", async () => {
    await rm(join(dir, "secrets/db-password"));
    await secret("keys/local.key", new Uint8Array(32), 0o604);
    const path = await file(
      GOOD.replace('anon_key = "anon"', 'anon_key = "anon"\ncolour = "secret-colour"')
        .replace("postgres://192.168.1.100", "postgres://recepcion_pc1:hunter2-in-url@192.168.1.100")
        .replace('key_file = "/etc/centrovision/local.key"', 'key_file = "keys/local.key"')
        .replace("holdDownMs = 20000", 'holdDownMs = "slow-secret"'),
    );
    const result = await startBackend(path);
    expect(result.code, result.stderr).toBe(78);
    for (const problem of [
      "supabase.colour: unknown option",
      "local_server.url: must not contain a password",
      "local_server.password_file: cannot read",
      "sqlite.key_file: ",
      "router.holdDownMs: ",
    ]) {
      expect(result.stderr).toContain(problem);
    }
    expect(result.stderr).toMatch(/sqlite\.key_file: .*local\.key is readable by others \(mode 0604\)/);
    // One problem per line, after the file's name.
    expect(result.stderr).toMatch(/^\[desktop\] invalid config .*config\.toml:\n {2}\S+: /);
    expect(result.stdout + result.stderr).not.toMatch(/hunter2|secret-colour|slow-secret/);
    expect(result.stderr).not.toMatch(/^\s+at |could not start|ENOENT: no such file/m);
  });
});

describe("dayRange", () => {
  it("is a branch's local day in UTC, including DST days", () => {
    expect(dayRange("2026-11-30", "America/Mexico_City")).toEqual({
      gte: "2026-11-30T06:00:00.000Z",
      lt: "2026-12-01T06:00:00.000Z",
    });
    // Madrid springs forward on 2026-03-29: a 23-hour day.
    expect(dayRange("2026-03-29", "Europe/Madrid")).toEqual({
      gte: "2026-03-28T23:00:00.000Z",
      lt: "2026-03-29T22:00:00.000Z",
    });
  });
});
