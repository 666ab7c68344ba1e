import { execFileSync, spawnSync } from "node:child_process";
import { createHash, randomBytes, X509Certificate } from "node:crypto";
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkServerIdentity } from "node:tls";
import { fileURLToPath } from "node:url";
import { type PostgresServer, startPostgres } from "@centrovision/testkit";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { scramVerifier } from "../src/init.js";

// What runs for real here: make-clinic-tls.sh (certificates checked, then served by a real
// PostgreSQL under the pg_hba.conf setup-server.sh writes) and set-role-password.sh (against the
// test PostgreSQL). setup-server.sh runs here with --dry-run; for real, from the installed Debian
// package, in package.test.ts, and its firewall step in setup-server-firewall.test.ts.
const deploy = (file: string) => fileURLToPath(new URL(`../deploy/${file}`, import.meta.url));
const SCRIPT = deploy("setup-server.sh");
const SET_ROLE_PASSWORD = deploy("set-role-password.sh");
const MAKE_TLS = deploy("make-clinic-tls.sh");

/** Files the runs below are given, made once (an anon key file is checked for what it holds). */
const fixtures = mkdtempSync(join(tmpdir(), "cv-deploy-fixtures-"));
const ANON_KEY = "sb_publishable_Test-anon.key_123";
const ANON_KEY_FILE = join(fixtures, "anon_key");
writeFileSync(ANON_KEY_FILE, `${ANON_KEY}\n`);
afterAll(() => rmSync(fixtures, { recursive: true, force: true }));

const makeTls = (...args: string[]) =>
  spawnSync("bash", [MAKE_TLS, ...args], { encoding: "utf8", timeout: 30_000 });

/** The block setup-server.sh --dry-run shows for `file` (its content, unindented). */
function shownFile(out: string, file: string): string {
  const lines = out.split("\n");
  const start = lines.findIndex((line) => line.startsWith(`would write ${file} (`) && line.endsWith(":"));
  expect(start, `${file} is not shown in:\n${out}`).toBeGreaterThanOrEqual(0);
  const body: string[] = [];
  for (const line of lines.slice(start + 1)) {
    if (!line.startsWith("    ")) break;
    body.push(line.slice(4));
  }
  return `${body.join("\n")}\n`;
}

const sha256 = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");

/** shellcheck, installed with apt-get when missing and possible; undefined when it cannot be. */
function shellcheck(): string | undefined {
  const found = spawnSync("sh", ["-c", "command -v shellcheck"], { encoding: "utf8" }).stdout.trim();
  if (found) return found;
  if (process.getuid?.() !== 0) return undefined;
  const install = spawnSync(
    "apt-get",
    ["install", "-y", "-q", "-o", "DPkg::Lock::Timeout=120", "shellcheck"],
    {
      encoding: "utf8",
      timeout: 120_000,
    },
  );
  return install.status === 0 ? "shellcheck" : undefined;
}

/** The options every run needs besides the ones a test is about (the script stands in for files). */
const CLOUD = [
  "--anon-key-file",
  ANON_KEY_FILE,
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
      const result = spawnSync(
        checker ?? "shellcheck",
        [
          "--severity=style",
          SCRIPT,
          SET_ROLE_PASSWORD,
          MAKE_TLS,
          deploy("postgresql-firewall.sh"),
          ...["postinst", "prerm", "postrm", "centrovision-sync"].map((file) => deploy(`debian/${file}`)),
        ],
        {
          encoding: "utf8",
        },
      );
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
    const result = setup(
      "--dry-run",
      "--subnet",
      "192.168.10.0/24",
      "--server-address",
      "192.168.10.5",
      "--supabase-url",
      "https://abc.supabase.co",
      // Without it, the PostgreSQL installed on the machine running the tests.
      "--pg-version",
      "16",
      ...CLOUD,
    );
    expect(result.status, result.stderr).toBe(0);
    const out = result.stdout;
    // systemd's steps where it is the init system; without it (this container) the script says so.
    const systemd = existsSync("/run/systemd/system");
    for (const expected of [
      "== PostgreSQL 16",
      "password_encryption = 'scram-sha-256'",
      "would write /etc/centrovision/secrets/db_password (mode 0600, owner root:root)",
      "--admin-url postgres://centrovision_admin@127.0.0.1:5432/centrovision",
      systemd
        ? "would run: systemctl enable --now centrovision-sync"
        : "no systemd here (or --root): centrovision-sync.service (the package's, in /lib/systemd/system) is not enabled; run the daemon with: /usr/bin/centrovision-sync --config /etc/centrovision/sync.toml run",
      "would run: pg_createcluster 16 main --port 5432",
      "would restart PostgreSQL if it does not yet listen on every address at port 5432, else reload it",
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
      // TLS by default: the clinic CA and the server certificate, made in a root-only folder.
      "would run: install -d -m 0700 -o root -g root /etc/centrovision/tls",
      `would run: ${MAKE_TLS} /etc/centrovision/tls 192.168.10.5`,
      "would run: install -m 0644 -o postgres -g postgres /etc/centrovision/tls/server.crt /etc/postgresql/16/main/server.crt",
      "would run: install -m 0600 -o postgres -g postgres /etc/centrovision/tls/server.key /etc/postgresql/16/main/server.key",
      "would run: install -m 0644 -o root -g root /etc/centrovision/tls/clinic-ca.pem /etc/centrovision/clients/clinic-ca.pem",
      "To do: fill in branch_id in /etc/centrovision/clients/config.toml",
      "Dry run: nothing was changed.",
    ]) {
      expect(out).toContain(expected);
    }
    // The server certificate is made before PostgreSQL is pointed at it.
    expect(out.indexOf("make-clinic-tls.sh")).toBeLessThan(
      out.indexOf(
        systemd ? "would run: systemctl start postgresql@16-main" : "would run: pg_ctlcluster 16 main start",
      ),
    );

    const conf = shownFile(out, "/etc/postgresql/16/main/conf.d/centrovision.conf");
    expect(conf).toContain("\nssl = on\n");
    expect(conf).toContain("\nport = 5432\n");
    expect(conf).toContain("ssl_cert_file = '/etc/postgresql/16/main/server.crt'");
    expect(conf).toContain("ssl_key_file = '/etc/postgresql/16/main/server.key'");

    const hba = shownFile(out, "/etc/postgresql/16/main/pg_hba.conf")
      .split("\n")
      .filter((line) => line !== "" && !line.startsWith("#"))
      .map((line) => line.split(/\s+/).join(" "));
    expect(hba).toEqual([
      "local all postgres peer",
      "local centrovision centrovision_admin scram-sha-256",
      "host centrovision centrovision_admin 127.0.0.1/32 scram-sha-256",
      "host centrovision cv_sync_daemon 127.0.0.1/32 scram-sha-256",
      "host centrovision cv_sync_daemon ::1/128 scram-sha-256",
      // The PCs: over TLS only; anything else from the network without TLS is refused.
      "hostssl centrovision +centrovision_app 192.168.10.0/24 scram-sha-256",
      "hostnossl all all 0.0.0.0/0 reject",
      "hostnossl all all ::/0 reject",
    ]);

    // The PCs' config, in the desktop's schema: the CA pinned, no user or password in the URL.
    const client = shownFile(out, "/etc/centrovision/clients/config.toml");
    expect(client).toContain('\n# branch_id = "<the branch\'s id>"\n');
    expect(client).not.toMatch(/^branch_id/m);
    for (const line of [
      "[supabase]",
      'url = "https://abc.supabase.co"',
      `anon_key = "${ANON_KEY}"`,
      "[local_server]",
      'url = "postgres://192.168.10.5:5432/centrovision"',
      'user = "centrovision_pc"',
      'password_file = "local_server_password"',
      'tls = "verify-full"',
      'ca_file = "clinic-ca.pem"',
      "[sqlite]",
      'path = "local.cvdb"',
      'key_file = "keys/local.key"',
    ]) {
      expect(client.split("\n")).toContain(line);
    }
    expect(client).not.toMatch(/sslmode|anon_key_file|^password\s*=/m);

    // Every change goes through `run` (which prints "+ ") or a write (which prints "wrote ").
    expect(out).not.toMatch(/^(\+ |wrote )/m);
    // No command carries a password, a key or a psql variable holding one: files are named instead.
    for (const line of out.split("\n").filter((l) => l.startsWith("would run:"))) {
      expect(line).not.toMatch(/ -v pw=|password '|PGPASSWORD|:\/\/[^@/\s]*:[^@/\s]*@/);
    }
  });

  it("--cert/--key/--ca: that certificate is served and its CA given to the PCs; no clinic CA is made", () => {
    const dir = mkdtempSync(join(tmpdir(), "cv-deploy-cert-"));
    try {
      expect(makeTls(dir, "10.0.0.5").status).toBe(0);
      const [cert, key, ca] = [join(dir, "server.crt"), join(dir, "server.key"), join(dir, "clinic-ca.pem")];
      const withCert = (...extra: string[]) =>
        setup(
          "--dry-run",
          "--subnet",
          "10.0.0.0/16",
          "--supabase-url",
          "https://abc.supabase.co",
          "--pg-version",
          "16",
          ...extra,
          ...CLOUD,
        );
      const result = withCert(
        "--server-address",
        "10.0.0.5",
        "--cert",
        `${cert}`,
        "--key",
        `${key}`,
        "--ca",
        `${ca}`,
      );
      expect(result.status, result.stderr).toBe(0);
      expect(result.stdout).toMatch(
        /^\s+hostssl\s+centrovision\s+\+centrovision_app\s+10\.0\.0\.0\/16\s+scram-sha-256$/m,
      );
      expect(result.stdout).toMatch(/^\s+hostnossl\s+all\s+all\s+0\.0\.0\.0\/0\s+reject$/m);
      expect(result.stdout).toContain("ssl = on");
      expect(result.stdout).not.toContain("make-clinic-tls.sh");
      expect(result.stdout).toContain(
        `would run: install -m 0644 -o postgres -g postgres ${cert} /etc/postgresql/16/main/server.crt`,
      );
      expect(result.stdout).toContain(
        `would run: install -m 0600 -o postgres -g postgres ${key} /etc/postgresql/16/main/server.key`,
      );
      expect(result.stdout).toContain(
        `would run: install -m 0644 -o root -g root ${ca} /etc/centrovision/clients/clinic-ca.pem`,
      );

      // --ca is required with --cert, and what the PCs will check is checked first.
      const noCa = withCert("--server-address", "10.0.0.5", "--cert", cert, "--key", key);
      expect(noCa.status).toBe(2);
      expect(noCa.stderr).toContain("--cert, --key and --ca go together");
      const otherAddress = withCert("--server-address", "10.0.0.6", "--cert", cert, "--key", key, "--ca", ca);
      expect(otherAddress.status).toBe(2);
      expect(otherAddress.stderr).toContain(`--cert: ${cert} does not name 10.0.0.6`);
      const otherCa = withCert("--server-address", "10.0.0.5", "--cert", cert, "--key", key, "--ca", cert);
      expect(otherCa.status).toBe(2);
      expect(otherCa.stderr).toContain(`--cert: ${cert} is not signed by --ca ${cert}`);
      expect(noCa.stdout + otherAddress.stdout + otherCa.stdout).toBe("");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
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
      "--server-address",
      "clinic.example",
      "--pc-branch-id",
      "roma",
      "--cluster",
      "Main",
      "--port",
      "70000",
      "--root",
      "relative/dir",
    );
    expect(result.status).toBe(2);
    expect(result.stderr).toContain("--subnet must be an IPv4 CIDR");
    expect(result.stderr).toContain("--supabase-url must be the project's https:// URL");
    expect(result.stderr).toContain("--keep-days must be a positive number");
    expect(result.stderr).toContain("--anon-key-file: cannot read");
    expect(result.stderr).toContain("--clinic-name is required");
    expect(result.stderr).toContain("--branch is required (repeat it for each branch this server holds)");
    expect(result.stderr).toContain("--service-role-key-file: cannot read");
    expect(result.stderr).toContain("--server-address must be this server's IPv4 address");
    expect(result.stderr).toContain("--pc-branch-id must be the branch's id (a UUID)");
    expect(result.stderr).toContain("--cluster must be a-z, 0-9, - and _, such as main");
    expect(result.stderr).toContain("--port must be a TCP port such as 5432");
    expect(result.stderr).toContain("--root must be an absolute path");
    expect(result.stdout).toBe("");
  });

  it("takes plain http only for a cloud on this machine (a local stack), never across a network", () => {
    const url = (supabaseUrl: string) =>
      setup(
        "--dry-run",
        "--subnet",
        "10.0.0.0/24",
        "--server-address",
        "10.0.0.5",
        "--supabase-url",
        supabaseUrl,
        ...CLOUD,
      );
    for (const local of ["http://127.0.0.1:54321", "http://localhost:54321/"]) {
      const result = url(local);
      expect(result.status, `${local}: ${result.stderr}`).toBe(0);
    }
    for (const remote of ["http://10.0.0.9:54321", "http://abc.supabase.co", "http://127.0.0.1.nip.io"]) {
      const result = url(remote);
      expect(result.status, remote).toBe(2);
      expect(result.stderr).toContain("--supabase-url must be the project's https:// URL");
    }
  });

  it("refuses an anon key file that does not hold a key (it is pasted into the PCs' config)", () => {
    const result = setup(
      "--dry-run",
      "--subnet",
      "192.168.1.0/24",
      "--supabase-url",
      "https://abc.supabase.co",
      ...CLOUD.map((arg) => (arg === ANON_KEY_FILE ? SCRIPT : arg)),
    );
    expect(result.status).toBe(2);
    expect(result.stderr).toContain(`--anon-key-file: ${SCRIPT} does not hold an anon key`);
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

  it("starts the bin the Debian package installs", () => {
    expect(unit).toMatch(
      /^ExecStart=\/usr\/bin\/centrovision-sync --config \/etc\/centrovision\/sync\.toml run$/m,
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

describe("make-clinic-tls.sh", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "cv-deploy-tls-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("makes the clinic CA and the server certificate once: owner-only keys, only file names printed, no key on any argument", () => {
    const out = join(dir, "made");
    // bash -x prints every command with its arguments as run (xtrace): no key may be in one.
    const result = spawnSync("bash", ["-x", MAKE_TLS, out, "127.0.0.1", "clinic-server.local"], {
      encoding: "utf8",
      timeout: 30_000,
    });
    expect(result.status, result.stderr).toBe(0);
    const files = ["clinic-ca.key", "clinic-ca.pem", "server.key", "server.crt"];
    expect(result.stdout).toBe(files.map((file) => `created ${join(out, file)}\n`).join(""));
    expect(readdirSync(out).sort()).toEqual([...files].sort());
    expect(statSync(out).mode & 0o777).toBe(0o700);
    for (const [file, mode] of [
      ["clinic-ca.key", 0o600],
      ["server.key", 0o600],
      ["clinic-ca.pem", 0o644],
      ["server.crt", 0o644],
    ] as const) {
      expect(statSync(join(out, file)).mode & 0o777, file).toBe(mode);
    }
    for (const key of ["clinic-ca.key", "server.key"]) {
      const pem = readFileSync(join(out, key), "utf8");
      expect(pem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
      const body = pem.split("\n").filter((line) => line !== "" && !line.startsWith("-----"));
      for (const line of body) expect(result.stdout + result.stderr).not.toContain(line);
    }
    expect(result.stdout + result.stderr).not.toMatch(/PRIVATE KEY|pass(out|in|word)?:/i);

    const ca = new X509Certificate(readFileSync(join(out, "clinic-ca.pem")));
    const server = new X509Certificate(readFileSync(join(out, "server.crt")));
    const days = (cert: X509Certificate) =>
      Math.round((Date.parse(cert.validTo) - Date.parse(cert.validFrom)) / 86_400_000);
    expect(ca.ca).toBe(true);
    expect(ca.checkIssued(ca)).toBe(true);
    expect(ca.publicKey.asymmetricKeyDetails?.namedCurve).toBe("prime256v1");
    expect(days(ca)).toBe(3650);
    expect(server.ca).toBe(false);
    expect(server.checkIssued(ca) && server.verify(ca.publicKey)).toBe(true);
    expect(server.publicKey.asymmetricKeyDetails?.namedCurve).toBe("prime256v1");
    expect(days(server)).toBe(730);
    expect(server.subjectAltName).toBe("IP Address:127.0.0.1, DNS:clinic-server.local");
    expect(server.keyUsage).toEqual(["1.3.6.1.5.5.7.3.1"]); // extended key usage: serverAuth only
    const caText = execFileSync("openssl", ["x509", "-in", join(out, "clinic-ca.pem"), "-noout", "-text"], {
      encoding: "utf8",
    });
    expect(caText).toMatch(/Basic Constraints: critical\s+CA:TRUE/);
    expect(caText).toMatch(/Key Usage: critical\s+Certificate Sign, CRL Sign/);
  });

  it("run again, changes no file and says it kept each", () => {
    const out = join(dir, "made");
    const before = readdirSync(out).map((file) => {
      const info = statSync(join(out, file));
      return [file, sha256(join(out, file)), info.mtimeMs, info.mode] as const;
    });
    const result = makeTls(out, "127.0.0.1", "clinic-server.local");
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout.trim().split("\n")).toEqual(
      ["clinic-ca.key", "clinic-ca.pem", "server.key", "server.crt"].map(
        (file) => `kept ${join(out, file)} (exists, never overwritten)`,
      ),
    );
    const after = readdirSync(out).map((file) => {
      const info = statSync(join(out, file));
      return [file, sha256(join(out, file)), info.mtimeMs, info.mode] as const;
    });
    expect(after).toEqual(before);
    // A kept certificate that no longer names the server's address is refused, never replaced.
    const moved = makeTls(out, "127.0.0.2");
    expect(moved.status).toBe(2);
    expect(moved.stderr).toContain(
      `${join(out, "server.crt")} does not name 127.0.0.2: move server.crt and server.key away`,
    );
    expect(readdirSync(out).map((file) => sha256(join(out, file)))).toEqual(before.map(([, hash]) => hash));
  });

  it("refuses bad input with a clear message and exit 2, creating nothing", () => {
    const cases: [string[], string][] = [
      [[], "usage: make-clinic-tls.sh OUT_DIR SERVER_ADDRESS [DNS_NAME...]"],
      [[join(dir, "bad"), "300.1.1.1"], "SERVER_ADDRESS must be the IPv4 address the PCs use"],
      [[join(dir, "bad"), "clinic.local"], "SERVER_ADDRESS must be the IPv4 address the PCs use"],
      [
        [join(dir, "bad"), "10.0.0.5", "-bad-"],
        "DNS_NAME must be a host name such as clinic-server.local (got '-bad-')",
      ],
      [[join(dir, "bad"), "10.0.0.5", "a b"], "DNS_NAME must be a host name"],
    ];
    for (const [args, message] of cases) {
      const result = makeTls(...args);
      expect(result.status, args.join(" ")).toBe(2);
      expect(result.stderr).toContain(`make-clinic-tls.sh: ${message}`);
      expect(result.stdout).toBe("");
    }
    expect(existsSync(join(dir, "bad"))).toBe(false);

    // Half a pair cannot be completed without overwriting or orphaning the other half.
    const half = join(dir, "half");
    mkdirSync(half);
    writeFileSync(join(half, "clinic-ca.key"), "x", { mode: 0o600 });
    const result = makeTls(half, "10.0.0.5");
    expect(result.status).toBe(2);
    expect(result.stderr).toContain(
      `only one of ${join(half, "clinic-ca.key")} and ${join(half, "clinic-ca.pem")} exists`,
    );
    expect(readdirSync(half)).toEqual(["clinic-ca.key"]);
  });
});

// The clinic server as setup-server.sh leaves it, for TLS: PostgreSQL with ssl = on and the
// certificate make-clinic-tls.sh made, under the pg_hba.conf the script writes (taken from its
// --dry-run, for the subnet 127.0.0.0/8), and a PC's login in centrovision_app.
describe("a PostgreSQL set up with make-clinic-tls.sh and setup-server.sh's pg_hba.conf", () => {
  let dir: string;
  let server: PostgresServer;
  let admin: postgres.Sql;
  const pcPassword = `pc-${randomBytes(12).toString("hex")}`;

  /** The `postgres` user the server runs as when the tests run as root (testkit), else nobody to hand to. */
  const serverIds = () => {
    if (process.getuid?.() !== 0) return undefined;
    const id = (flag: string) => Number(execFileSync("id", [flag, "postgres"], { encoding: "utf8" }).trim());
    return { uid: id("-u"), gid: id("-g") };
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "cv-deploy-pgtls-"));
    for (const [out, names] of [
      ["tls", ["clinic-server.local"]],
      ["other", []],
    ] as const) {
      const made = makeTls(join(dir, out), "127.0.0.1", ...names);
      expect(made.status, made.stderr).toBe(0);
    }
    // As setup-server.sh installs them for PostgreSQL: the key 0600, owned by the server's user.
    const pg = join(dir, "pg");
    mkdirSync(pg);
    copyFileSync(join(dir, "tls", "server.crt"), join(pg, "server.crt"));
    copyFileSync(join(dir, "tls", "server.key"), join(pg, "server.key"));
    chmodSync(join(pg, "server.crt"), 0o644);
    chmodSync(join(pg, "server.key"), 0o600);
    const ids = serverIds();
    if (ids) {
      for (const path of [pg, join(pg, "server.crt"), join(pg, "server.key")])
        chownSync(path, ids.uid, ids.gid);
      chmodSync(dir, 0o755);
    }
    server = await startPostgres({
      settings: {
        ssl: "on",
        ssl_cert_file: join(pg, "server.crt"),
        ssl_key_file: join(pg, "server.key"),
        password_encryption: "scram-sha-256",
      },
    });
    admin = postgres(server.url, { max: 1, onnotice: () => {} });
    await admin.unsafe("create database centrovision");
    await admin.unsafe("create role centrovision_app nologin");
    await admin.unsafe(`create role centrovision_pc login in role centrovision_app password '${pcPassword}'`);

    // The pg_hba.conf setup-server.sh writes, as it shows it (PostgreSQL 99: no such folder here).
    const dry = setup(
      "--dry-run",
      "--subnet",
      "127.0.0.0/8",
      "--server-address",
      "127.0.0.1",
      "--pg-version",
      "99",
      "--supabase-url",
      "https://abc.supabase.co",
      ...CLOUD,
    );
    expect(dry.status, dry.stderr).toBe(0);
    const hbaFile = join(server.dataDir, "pg_hba.conf");
    writeFileSync(hbaFile, shownFile(dry.stdout, "/etc/postgresql/99/main/pg_hba.conf"), { mode: 0o640 });
    if (ids) chownSync(hbaFile, ids.uid, ids.gid);
    const errors = await admin<{ line_number: number; error: string }[]>`
      select line_number, error from pg_hba_file_rules where error is not null`;
    expect(errors).toEqual([]);
    await admin`select pg_reload_conf()`;
    // The reload is asynchronous: wait until a connection without TLS is refused (the admin's stays open).
    for (let tries = 0; ; tries++) {
      const plain = postgres({ ...target(), ssl: false });
      const refused = await plain`select 1`.then(
        () => false,
        () => true,
      );
      await plain.end();
      if (refused || tries > 50) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }, 120_000);

  afterAll(async () => {
    await admin?.end();
    await server?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** A PC's connection to the clinic server at 127.0.0.1 (`ssl` set by each test). */
  const target = (user = "centrovision_pc", password = pcPassword, database = "centrovision") => ({
    host: "127.0.0.1",
    port: server.port,
    database,
    username: user,
    password,
    max: 1,
    connect_timeout: 5,
    onnotice: () => {},
  });
  /**
   * verify-full as the desktop connects (adapter-postgres's tlsOptions): the chain to `ca` only,
   * and the address checked against the certificate's IP SANs (an IP is no TLS server name).
   */
  const verifyFull = (caFile: string, address = "127.0.0.1") => ({
    rejectUnauthorized: true,
    ca: readFileSync(caFile, "utf8"),
    checkServerIdentity: (_name: string, cert: Parameters<typeof checkServerIdentity>[1]) =>
      checkServerIdentity(address, cert),
  });
  const connect = async (
    options: ReturnType<typeof target> & { ssl: false | ReturnType<typeof verifyFull> },
  ) => {
    const sql = postgres(options);
    try {
      return await sql<{ who: string; ssl: boolean }[]>`
        select current_user as who, ssl from pg_stat_ssl where pid = pg_backend_pid()`;
    } finally {
      await sql.end();
    }
  };

  it("a PC's login connects over TLS, verify-full against clinic-ca.pem, with its password (SCRAM)", async () => {
    const rows = await connect({ ...target(), ssl: verifyFull(join(dir, "tls", "clinic-ca.pem")) });
    expect(rows).toEqual([{ who: "centrovision_pc", ssl: true }]);
    await expect(
      connect({
        ...target("centrovision_pc", `${pcPassword}x`),
        ssl: verifyFull(join(dir, "tls", "clinic-ca.pem")),
      }),
    ).rejects.toThrow(/password authentication failed for user "centrovision_pc"/);
  });

  it("a plain connection from the network is refused by pg_hba (no encryption), the superuser's too", async () => {
    await expect(connect({ ...target(), ssl: false })).rejects.toThrow(
      /pg_hba\.conf rejects connection for host "127\.0\.0\.1", user "centrovision_pc", database "centrovision", no encryption/,
    );
    await expect(
      connect({ ...target(server.user, server.password, "postgres"), ssl: false }),
    ).rejects.toThrow(/pg_hba\.conf rejects connection .*no encryption/);
  });

  it("a server certificate from another CA, or naming another address, is refused by the PC", async () => {
    const other = connect({ ...target(), ssl: verifyFull(join(dir, "other", "clinic-ca.pem")) });
    await expect(other).rejects.toMatchObject({
      code: expect.stringMatching(
        /^(UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)$/,
      ),
    });
    const elsewhere = connect({
      ...target(),
      ssl: verifyFull(join(dir, "tls", "clinic-ca.pem"), "10.9.9.9"),
    });
    await expect(elsewhere).rejects.toMatchObject({ code: "ERR_TLS_CERT_ALTNAME_INVALID" });
  });
});
