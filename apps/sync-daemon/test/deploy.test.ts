import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const deploy = (file: string) => fileURLToPath(new URL(`../deploy/${file}`, import.meta.url));
const SCRIPT = deploy("setup-server.sh");

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
      const result = spawnSync(checker ?? "shellcheck", ["--severity=style", SCRIPT], { encoding: "utf8" });
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
      "Dry run: nothing was changed.",
    ]) {
      expect(out).toContain(expected);
    }
    expect(out).not.toMatch(/^\+ /m);
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
