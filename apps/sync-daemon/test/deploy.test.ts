import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import postgres from "postgres";
import { describe, expect, inject, it } from "vitest";
import { scramVerifier } from "../src/init.js";

const deploy = (file: string) => fileURLToPath(new URL(`../deploy/${file}`, import.meta.url));
const SCRIPT = deploy("setup-server.sh");
const SET_ROLE_PASSWORD = deploy("set-role-password.sh");

/** shellcheck, installed with apt-get when missing and possible; undefined when it cannot be. */
function shellcheck(): string | undefined {
  const found = spawnSync("sh", ["-c", "command -v shellcheck"], { encoding: "utf8" }).stdout.trim();
  if (found) return found;
  if (process.getuid?.() !== 0) return undefined;
  const install = spawnSync("apt-get", ["install", "-y", "-q", "shellcheck"], {
    encoding: "utf8",
    timeout: 120_000,
  });
  return install.status === 0 ? "shellcheck" : undefined;
}

/** The options every run needs besides the ones a test is about (the script stands in for files). */
const CLOUD = [
  "--anon-key-file",
  SCRIPT,
  "--clinic-name",
  "Clínica Roma",
  "--branch",
  "Roma Norte",
  "--service-role-key-file",
  SCRIPT,
];

const setup = (...args: string[]) =>
  spawnSync("bash", [SCRIPT, ...args], { encoding: "utf8", timeout: 30_000 });

describe("setup-server.sh", () => {
  const checker = shellcheck();
  it.skipIf(checker === undefined)(
    "passes shellcheck (skipped only when shellcheck cannot be installed)",
    () => {
      const result = spawnSync(checker ?? "shellcheck", ["--severity=style", SCRIPT, SET_ROLE_PASSWORD], {
        encoding: "utf8",
      });
      expect(result.stdout + result.stderr).toBe("");
      expect(result.status).toBe(0);
    },
  );
  if (checker === undefined) {
    console.warn(
      "[sync-daemon tests] shellcheck is not installed and could not be: apt-get install shellcheck",
    );
  }

  it("--dry-run prints every step and changes nothing", () => {
    const before = existsSync("/etc/centrovision");
    const result = setup(
      "--dry-run",
      "--subnet",
      "192.168.10.0/24",
      "--supabase-url",
      "https://abc.supabase.co",
      ...CLOUD,
    );
    expect(result.status, result.stderr).toBe(0);
    const out = result.stdout;
    for (const expected of [
      "== PostgreSQL 16",
      "password_encryption = 'scram-sha-256'",
      "host centrovision    +centrovision_app     192.168.10.0/24   scram-sha-256",
      "would write /etc/centrovision/secrets/db_password (mode 0600, owner root:root)",
      "--admin-url postgres://centrovision_admin@127.0.0.1:5432/centrovision",
      "would run: systemctl enable --now centrovision-sync",
      "pg_dump --format=custom",
      "pg_restore --exit-on-error",
      "-mtime +14 -delete",
      "OnCalendar=*-*-* 02:30:00",
      "would write /etc/centrovision/clients/config.toml",
      "would run: centrovision-sync node create --name 'Clínica Roma' --service-role-key-file",
      "--branch Roma Norte",
      // The logins' passwords: by the secret files' paths, hashed by set-role-password.sh.
      `would run: ${SET_ROLE_PASSWORD} centrovision_admin /etc/centrovision/secrets/admin_password`,
      `would run: ${SET_ROLE_PASSWORD} centrovision_pc /etc/centrovision/secrets/pc_password`,
      "Dry run: nothing was changed.",
    ]) {
      expect(out).toContain(expected);
    }
    expect(out).not.toMatch(/^\+ /m);
    // No command carries a password, a key or a psql variable holding one: files are named instead.
    for (const line of out.split("\n").filter((l) => l.startsWith("would run:"))) {
      expect(line).not.toMatch(/ -v pw=|password '|PGPASSWORD|:\/\/[^@/\s]*:[^@/\s]*@/);
    }
    expect(existsSync("/etc/centrovision")).toBe(before);
  });

  it("--dry-run with a certificate restricts the PCs to TLS (hostssl)", () => {
    const cert = SCRIPT;
    const result = setup(
      "--dry-run",
      "--subnet",
      "10.0.0.0/16",
      "--supabase-url",
      "https://abc.supabase.co",
      "--cert",
      cert,
      "--key",
      cert,
      ...CLOUD,
    );
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toContain("hostssl centrovision    +centrovision_app     10.0.0.0/16");
    expect(result.stdout).toContain("ssl = on");
  });

  it("lists every bad option before doing anything, exit 2", () => {
    const result = setup(
      "--dry-run",
      "--subnet",
      "192.168.1.0",
      "--supabase-url",
      "http://x",
      "--keep-days",
      "0",
    );
    expect(result.status).toBe(2);
    expect(result.stderr).toContain("--subnet must be an IPv4 CIDR");
    expect(result.stderr).toContain("--supabase-url must be the project's https:// URL");
    expect(result.stderr).toContain("--keep-days must be a positive number");
    expect(result.stderr).toContain("--anon-key-file: cannot read");
    expect(result.stderr).toContain("--clinic-name is required");
    expect(result.stderr).toContain("--branch is required (repeat it for each branch this server holds)");
    expect(result.stderr).toContain("--service-role-key-file: cannot read");
    expect(result.stdout).toBe("");
  });
});

describe("centrovision-sync.service", () => {
  const unit = readFileSync(deploy("centrovision-sync.service"), "utf8");
  it("is hardened, restarts on failure but not on a bad config (exit 78)", () => {
    for (const line of [
      "Restart=on-failure",
      "RestartPreventExitStatus=78",
      "NoNewPrivileges=yes",
      "ProtectSystem=strict",
      "ProtectHome=yes",
      "PrivateTmp=yes",
      "CapabilityBoundingSet=",
      "User=centrovision-sync",
      "KillSignal=SIGTERM",
    ]) {
      expect(unit.split("\n")).toContain(line);
    }
  });

  it("starts the bin the setup script installs", () => {
    expect(unit).toMatch(
      /^ExecStart=\/usr\/local\/bin\/centrovision-sync --config \/etc\/centrovision\/sync\.toml run$/m,
    );
    expect(execFileSync("bash", ["-n", SCRIPT]).toString()).toBe("");
  });
});

describe("set-role-password.sh", () => {
  it("sets a login's password as a SCRAM-SHA-256 verifier on psql's stdin: the secret is in no argument, output or statement", async () => {
    const admin = postgres(inject("postgresUrl"), { max: 1, onnotice: () => {} });
    const role = `cv_deploy_${randomBytes(4).toString("hex")}`;
    const password = `pw-${randomBytes(12).toString("hex")}`;
    const dir = mkdtempSync(join(tmpdir(), "cv-deploy-"));
    try {
      await admin.unsafe(`create role ${role} login`);
      const secretFile = join(dir, "pc_password");
      writeFileSync(secretFile, `${password}\n`, { mode: 0o600 });
      // runuser stands in for the real one: it records its arguments and stdin, then runs the
      // psql command it was given against this run's PostgreSQL (as its superuser, not peer).
      const bin = join(dir, "bin");
      mkdirSync(bin);
      writeFileSync(
        join(bin, "runuser"),
        `#!/usr/bin/env bash
printf '%s\\n' "$@" >"${dir}/argv"
while [[ $1 != -- ]]; do shift; done
shift
tee "${dir}/stdin" | "$@"
`,
      );
      chmodSync(join(bin, "runuser"), 0o755);
      const url = new URL(inject("postgresUrl"));
      // bash -x prints every command with its arguments as run (xtrace): the secret must be in none.
      const result = spawnSync("bash", ["-x", SET_ROLE_PASSWORD, role, secretFile], {
        encoding: "utf8",
        timeout: 30_000,
        env: {
          ...process.env,
          PATH: `${bin}:${process.env.PATH}`,
          PGHOST: url.hostname,
          PGPORT: url.port,
          PGUSER: decodeURIComponent(url.username),
          PGPASSWORD: decodeURIComponent(url.password),
        },
      });
      expect(result.status, result.stderr).toBe(0);
      expect(result.stdout).toBe(
        `set the password of ${role} from ${secretFile} (sent as a SCRAM-SHA-256 verifier)\n`,
      );
      expect(result.stderr).toContain("+ runuser -u postgres -- psql -v ON_ERROR_STOP=1 -X -q -d postgres");
      expect(result.stdout + result.stderr).not.toContain(password);
      const argv = readFileSync(join(dir, "argv"), "utf8");
      expect(argv).toBe(
        ["-u", "postgres", "--", "psql", "-v", "ON_ERROR_STOP=1", "-X", "-q", "-d", "postgres", ""].join(
          "\n",
        ),
      );

      // What psql got, hence all the server saw: the verifier, never the password.
      const sent = readFileSync(join(dir, "stdin"), "utf8");
      expect(sent).not.toContain(password);
      const verifier = /\\set verifier '(SCRAM-SHA-256\$4096:([^$]+)\$[^']+)'/.exec(sent);
      expect(verifier, sent).not.toBeNull();
      const [, sentVerifier = "", salt = ""] = verifier ?? [];
      // The daemon's own implementation, with the same salt, gives the same verifier.
      expect(sentVerifier).toBe(scramVerifier(password, Buffer.from(salt, "base64")));
      const [stored] = await admin<{ rolpassword: string }[]>`
        select rolpassword from pg_authid where rolname = ${role}`;
      expect(stored?.rolpassword).toBe(sentVerifier);

      // PostgreSQL accepts the password from the file (trimmed), and no other.
      const login = (pw: string) =>
        postgres({
          host: url.hostname,
          port: Number(url.port),
          database: "postgres",
          username: role,
          password: pw,
          max: 1,
        });
      const good = login(password);
      expect((await good<{ who: string }[]>`select current_user as who`)[0]?.who).toBe(role);
      await good.end();
      const bad = login(`${password}x`);
      await expect(bad`select 1`).rejects.toThrow(/password authentication failed/);
      await bad.end();

      // An empty secret file is refused before psql runs.
      writeFileSync(secretFile, "\n");
      rmSync(join(dir, "stdin"));
      const empty = spawnSync("bash", [SET_ROLE_PASSWORD, role, secretFile], {
        encoding: "utf8",
        env: { ...process.env, PATH: `${bin}:${process.env.PATH}` },
      });
      expect(empty.status).toBe(2);
      expect(empty.stderr).toContain("the secret file is empty");
      expect(existsSync(join(dir, "stdin"))).toBe(false);
    } finally {
      await admin.unsafe(`drop role if exists ${role}`);
      await admin.end();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
