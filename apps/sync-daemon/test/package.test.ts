import { type SpawnSyncReturns, spawnSync } from "node:child_process";
import { createHash, randomUUID } from "node:crypto";
import {
  chmodSync,
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
import { join, relative } from "node:path";
import { checkServerIdentity } from "node:tls";
import { fileURLToPath } from "node:url";
import { PRODUCT_VERSION } from "@centrovision/core";
import { freePort } from "@centrovision/testkit";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

// The Debian package, for real, on this machine: built by `npm run package`, installed with
// apt-get (which pulls Debian's PostgreSQL when missing), its CLI run from the installed files in a
// mount namespace where the repository is an empty folder, then the server set up by the installed
// centrovision-setup-server (a throwaway cluster on a free port, every file under a throwaway
// --root, the run's local Supabase as the cloud), upgraded over itself, removed and purged.
// What it cannot do here: systemd is not the init system in this container, so no unit is enabled
// or started (the maintainer scripts' systemd branch runs against a stand-in systemctl below), and
// PostgreSQL is run with pg_ctlcluster. Left behind: the PostgreSQL packages apt-get installed
// (reinstalling them every run would cost more than the rest of the test).
const REPO = fileURLToPath(new URL("../../../", import.meta.url)).replace(/\/$/, "");
const DEBIAN = fileURLToPath(new URL("../deploy/debian/", import.meta.url));
const PACKAGE = "centrovision-sync";
const SERVICE_USER = "centrovision-sync";
const LIB = "/usr/lib/centrovision-sync";
const POLICY_RC = "/usr/sbin/policy-rc.d";
/** What a root shell on a server has: nothing of this test run (no NODE_OPTIONS, no tsx). */
const SERVER_ENV = {
  PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
  LANG: "C.UTF-8",
  DEBIAN_FRONTEND: "noninteractive",
};

const sh = (command: string, args: string[], timeout = 120_000, env: NodeJS.ProcessEnv = SERVER_ENV) =>
  spawnSync(command, args, { encoding: "utf8", timeout, env, cwd: tmpdir() });
/** apt-get waiting for another apt or dpkg (another test, unattended-upgrades) instead of failing. */
const apt = (...args: string[]) =>
  sh("apt-get", ["-y", "-q", "-o", "DPkg::Lock::Timeout=300", ...args], 600_000);
/** dpkg's status and version of `name` ("install ok installed 0.1.0"), "" when dpkg never had it. */
const dpkgStatus = (name: string) =>
  // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own fields, not JavaScript's
  sh("dpkg-query", ["-W", "-f", "${Status} ${Version}", name]).stdout;
/** Installed, or removed with its configuration kept: what purge still has to take. */
const present = (name: string) =>
  / ok (installed|config-files|half-installed|unpacked|half-configured)/.test(dpkgStatus(name));
const output = (result: SpawnSyncReturns<string>) => result.stdout + result.stderr;
const timed = <T>(run: () => T): [T, number] => {
  const started = performance.now();
  const result = run();
  return [result, (performance.now() - started) / 1000];
};

/**
 * `command` as on a server without the repository: in a mount namespace of its own where the
 * repository's folder is an empty tmpfs, from `cwd`, with a plain root environment.
 */
const withoutRepo = (cwd: string, command: string, args: string[], timeout = 120_000) =>
  sh(
    "unshare",
    [
      "--mount",
      "--propagation",
      "private",
      "--",
      "sh",
      "-c",
      'mount -t tmpfs -o size=1m cv-no-repo "$0" && [ ! -e "$0/package.json" ] && cd "$1" && shift && exec "$@"',
      REPO,
      cwd,
      command,
      ...args,
    ],
    timeout,
  );

/** Why the package cannot be installed here, or undefined. */
function unavailable(): string | undefined {
  if (process.getuid?.() !== 0)
    return "it installs a Debian package, so it runs only as root (CI runs as root)";
  for (const tool of ["dpkg-deb", "apt-get", "unshare"]) {
    if (sh("sh", ["-c", `command -v ${tool}`]).status !== 0) {
      return `${tool} is not installed: this is no Debian or Ubuntu machine`;
    }
  }
  if (dpkgStatus(PACKAGE).startsWith("install ok installed")) {
    return `${PACKAGE} is installed on this machine, and the test would purge it: apt-get purge ${PACKAGE} first`;
  }
  const node = /^install ok installed (\d+)\./.exec(dpkgStatus("nodejs"));
  if (!node || Number(node[1]) < 20) {
    return "the package depends on the Debian package nodejs >= 20 (NodeSource's), which this machine's Node.js is not";
  }
  if (!dpkgStatus("postgresql").startsWith("install ok installed") && apt("update").status !== 0) {
    return "apt-get must install PostgreSQL, and apt-get update cannot reach Debian's mirrors";
  }
  return undefined;
}

const sha256 = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");

/** Every file under `dir` with its content hash, mode and owner (what an upgrade must not change). */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (!existsSync(dir)) return out;
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    const info = statSync(path);
    out[path] = `${sha256(path)} ${(info.mode & 0o777).toString(8)} ${info.uid}:${info.gid}`;
  }
  return out;
}

// The maintainer scripts' systemd branch, which this container cannot run for real: in a mount
// namespace where /run is a tmpfs holding /run/systemd/system (how they tell systemd runs), with
// systemctl, deb-systemd-invoke and getent stand-ins that record their calls.
describe.skipIf(process.getuid?.() !== 0)("the maintainer scripts, where systemd runs", () => {
  let dir = "";
  let calls = "";
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "cv-maint-"));
    calls = join(dir, "calls");
    for (const tool of ["systemctl", "deb-systemd-invoke", "getent"]) {
      // `systemctl is-enabled` answers as ENABLED says; getent finds the service user (no useradd).
      writeFileSync(
        join(dir, tool),
        `#!/bin/sh\necho "${tool} $*" >>"${calls}"\ncase " $* " in *" is-enabled "*) [ "$ENABLED" = 1 ] ;; esac\n`,
        { mode: 0o755 },
      );
    }
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const script = (name: string, enabled: boolean, ...args: string[]) => {
    rmSync(calls, { force: true });
    const result = sh(
      "unshare",
      [
        "--mount",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        'mount -t tmpfs cv-run /run && mkdir -p /run/systemd/system && exec sh "$@"',
        "sh",
        join(DEBIAN, name),
        ...args,
      ],
      30_000,
      { ...SERVER_ENV, PATH: `${dir}:${SERVER_ENV.PATH}`, ENABLED: enabled ? "1" : "0" },
    );
    expect(result.status, output(result)).toBe(0);
    return {
      out: result.stdout,
      calls: existsSync(calls) ? readFileSync(calls, "utf8").trim().split("\n") : [],
    };
  };

  it("an upgrade restarts an enabled service on the new version; a first install enables and starts nothing", () => {
    expect(script("postinst", true, "configure", "0.0.9").calls).toEqual([
      "getent passwd centrovision-sync",
      "systemctl daemon-reload",
      "systemctl --quiet is-enabled centrovision-sync.service",
      "deb-systemd-invoke restart centrovision-sync.service",
    ]);
    const first = script("postinst", false, "configure", "");
    expect(first.calls).toEqual([
      "getent passwd centrovision-sync",
      "systemctl daemon-reload",
      "systemctl --quiet is-enabled centrovision-sync.service",
    ]);
    if (!existsSync("/etc/centrovision/sync.toml")) {
      expect(first.out).toContain(
        "installed. Set this server up with: sudo centrovision-setup-server --help",
      );
    }
  });

  it("removal stops and disables the service; an upgrade leaves it running for postinst", () => {
    expect(script("prerm", true, "remove").calls).toEqual([
      "deb-systemd-invoke stop centrovision-sync.service",
      "systemctl disable centrovision-sync.service",
    ]);
    expect(script("prerm", true, "upgrade", PRODUCT_VERSION).calls).toEqual([]);
    expect(script("postrm", false, "remove").calls).toEqual(["systemctl daemon-reload"]);
  });
});

const reason = unavailable();
if (reason) console.warn(`[sync-daemon tests] the Debian package is not installed here: ${reason}`);

describe.skipIf(reason !== undefined)(
  "the Debian package, built, installed, set up, upgraded and removed",
  () => {
    const cloud = inject("cloud");
    const cluster = `cvpkg${randomUUID().slice(0, 8)}`;
    let root = "";
    let fixtures = "";
    let etc = "";
    const branch = randomUUID();
    const patient = randomUUID();
    const userExisted = sh("id", [SERVICE_USER]).status === 0;
    const realConfigDirExisted = existsSync("/etc/centrovision");
    const policyExisted = existsSync(POLICY_RC);
    let deb = "";
    let version = "";
    let installed: SpawnSyncReturns<string>;
    let port = 0;
    let setup: SpawnSyncReturns<string>;
    let setupArgs: string[];
    let cloudSql: postgres.Sql;

    beforeAll(async () => {
      root = mkdtempSync(join(tmpdir(), "cv-pkg-root-"));
      fixtures = mkdtempSync(join(tmpdir(), "cv-pkg-in-"));
      etc = join(root, "etc/centrovision");
      const [built, buildSeconds] = timed(() =>
        spawnSync("npm", ["run", "package", "-w", PACKAGE], {
          cwd: REPO,
          encoding: "utf8",
          timeout: 300_000,
        }),
      );
      expect(built.status, output(built)).toBe(0);
      deb = join(REPO, /^built (dist\/packages\/\S+\.deb) /m.exec(built.stdout)?.[1] ?? "no .deb named");
      // Debian's way to keep a package's install from starting services (PostgreSQL's main cluster):
      // invoke-rc.d asks policy-rc.d, and 101 means "not now". Docker images ship one; else it is ours.
      if (!policyExisted) writeFileSync(POLICY_RC, "#!/bin/sh\nexit 101\n", { mode: 0o755 });
      let installSeconds: number;
      try {
        [installed, installSeconds] = timed(() => apt("install", "--no-install-recommends", deb));
      } finally {
        if (!policyExisted) rmSync(POLICY_RC, { force: true });
      }
      expect(installed.status, output(installed)).toBe(0);
      version = sh("dpkg-deb", ["-f", deb, "Version"]).stdout.trim();
      console.log(
        `[sync-daemon tests] ${relative(REPO, deb)}: ${Math.round(statSync(deb).size / 1024)} KiB, built in ${buildSeconds.toFixed(1)} s, installed in ${installSeconds.toFixed(1)} s (with what apt-get pulled in)`,
      );

      port = await freePort();
      // postgres runs the backup into $root/var/backups: the folders above it must be traversable.
      chmodSync(root, 0o755);
      writeFileSync(join(fixtures, "anon_key"), `${cloud.anonKey}\n`, { mode: 0o600 });
      writeFileSync(join(fixtures, "service_role_key"), `${cloud.serviceRoleKey}\n`, { mode: 0o600 });
      cloudSql = postgres(cloud.dbUrl, { max: 1, onnotice: () => {} });
      await cloudSql`insert into branches (id, code, name, address)
      values (${branch}, ${`S-${branch.slice(0, 8).toUpperCase()}`}, 'Clínica Roma', 'Av. Álvaro Obregón 121')`;
      await cloudSql`insert into patients (id, branch_id, first_name, last_name, birth_date, sex, phone)
      values (${patient}, ${branch}, 'María José', 'Peña', '1962-07-14', 'female', '33 3615 0000')`;
    }, 900_000);

    afterAll(async () => {
      await cloudSql?.end();
      if (present(PACKAGE)) apt("purge", PACKAGE);
      if (port !== 0) {
        sh("pg_dropcluster", ["--stop", pgVersion(), cluster]);
        // pg_dropcluster leaves the files it did not make (the script's TLS pair and conf.d).
        rmSync(`/etc/postgresql/${pgVersion()}/${cluster}`, { recursive: true, force: true });
      }
      if (!realConfigDirExisted) rmSync("/etc/centrovision", { recursive: true, force: true });
      if (!userExisted) sh("userdel", [SERVICE_USER]);
      if (root) rmSync(root, { recursive: true, force: true });
      if (fixtures) rmSync(fixtures, { recursive: true, force: true });
    });

    /** The PostgreSQL major version the package's dependency installed (the newest there). */
    const pgVersion = () =>
      readdirSync("/usr/lib/postgresql")
        .filter((v) => existsSync(`/usr/lib/postgresql/${v}/bin/postgres`))
        .sort()
        .at(-1) ?? "";

    it("installs the daemon, its migrations, the unit and the setup script, and nothing under /etc", () => {
      expect(version).toBe(PRODUCT_VERSION.replace("-", "~"));
      const depends = sh("dpkg-deb", ["-f", deb, "Depends"]).stdout;
      expect(depends).toContain("nodejs (>= 20)");
      expect(depends).toMatch(/\bpostgresql\b/);
      const files = sh("dpkg", ["-L", PACKAGE]).stdout.trim().split("\n");
      for (const path of [
        "/usr/bin/centrovision-sync",
        "/usr/sbin/centrovision-setup-server",
        "/lib/systemd/system/centrovision-sync.service",
        `${LIB}/lib/cli.mjs`,
        `${LIB}/deploy/setup-server.sh`,
        `${LIB}/deploy/postgresql-firewall.sh`,
      ]) {
        expect(files).toContain(path);
      }
      expect(files.filter((path) => path.startsWith("/etc"))).toEqual([]);
      expect(files.filter((path) => path.includes("node_modules"))).toEqual([]);
      // The repository's sql/, byte for byte.
      const sql = (dir: string) =>
        readdirSync(dir, { recursive: true, withFileTypes: true })
          .filter((entry) => entry.isFile() && entry.name.endsWith(".sql"))
          .map(
            (entry) =>
              `${relative(dir, join(entry.parentPath, entry.name))} ${sha256(join(entry.parentPath, entry.name))}`,
          )
          .sort();
      expect(sql(`${LIB}/sql`)).toEqual(sql(join(REPO, "sql")));
      expect(sql(`${LIB}/sql`).some((line) => line.startsWith("functions/"))).toBe(true);
      // No installed file names the build's checkout.
      for (const path of files.filter((p) => existsSync(p) && statSync(p).isFile())) {
        expect(readFileSync(path, "utf8").includes(REPO), path).toBe(false);
      }
      // postinst made the service's user, and (no config yet) says what to do next.
      expect(sh("id", ["-u", SERVICE_USER]).status).toBe(0);
      expect(installed.stdout).toContain(
        "centrovision-sync: installed. Set this server up with: sudo centrovision-setup-server --help",
      );
      expect(existsSync("/etc/systemd/system/multi-user.target.wants/centrovision-sync.service")).toBe(false);
      // The unit as systemd reads it (known keys in their sections, ExecStart there), where its tools are.
      if (sh("sh", ["-c", "command -v systemd-analyze"]).status === 0) {
        const verify = sh("systemd-analyze", ["verify", "/lib/systemd/system/centrovision-sync.service"]);
        expect(output(verify)).toBe("");
        expect(verify.status).toBe(0);
      }
    });

    it("runs --help, --version and config check from the installed files, with the repository out of sight", () => {
      const cwd = mkdtempSync(join(tmpdir(), "cv-pkg-cwd-"));
      try {
        chmodSync(cwd, 0o700);
        const help = withoutRepo(cwd, "centrovision-sync", ["--help"]);
        expect(help.status, output(help)).toBe(0);
        expect(help.stdout).toMatch(/^Usage: centrovision-sync /);
        expect(withoutRepo(cwd, "centrovision-sync", ["--version"]).stdout.trim()).toBe(PRODUCT_VERSION);
        writeFileSync(join(cwd, "db_password"), "pw\n", { mode: 0o600 });
        writeFileSync(join(cwd, "node_password"), "pw\n", { mode: 0o600 });
        const config = [
          "[node]",
          'name = "clinic-package"',
          "[cloud]",
          'url = "https://example.supabase.co"',
          'anon_key = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYW5vbiJ9.package"',
          'node_email = "node@example.mx"',
          'node_password_file = "node_password"',
          "[clinic]",
          'url = "postgres://cv_sync_daemon@127.0.0.1:5432/centrovision"',
          'password_file = "db_password"',
        ];
        writeFileSync(join(cwd, "sync.toml"), config.join("\n"), { mode: 0o600 });
        const check = withoutRepo(cwd, "centrovision-sync", ["--config", "sync.toml", "config", "check"]);
        expect(check.status, output(check)).toBe(0);
        expect(check.stdout).toContain("config ok: node clinic-package");
        writeFileSync(join(cwd, "sync.toml"), [...config, "[sync]", "interval = 5"].join("\n"), {
          mode: 0o600,
        });
        const bad = withoutRepo(cwd, "centrovision-sync", ["--config", "sync.toml", "config", "check"]);
        expect(bad.status, output(bad)).toBe(78);
        expect(bad.stderr).toContain("sync.interval");
      } finally {
        rmSync(cwd, { recursive: true, force: true });
      }
    });

    describe("the server set up by the installed centrovision-setup-server", () => {
      beforeAll(() => {
        setupArgs = [
          "--subnet",
          "127.0.0.0/8",
          "--server-address",
          "127.0.0.1",
          "--supabase-url",
          cloud.url,
          "--anon-key-file",
          join(fixtures, "anon_key"),
          "--service-role-key-file",
          join(fixtures, "service_role_key"),
          "--clinic-name",
          `Clínica Roma ${cluster}`,
          "--all-branches",
          "--pc-branch-id",
          branch,
          "--cluster",
          cluster,
          "--port",
          String(port),
          "--root",
          root,
        ];
        setup = withoutRepo(fixtures, "centrovision-setup-server", setupArgs, 420_000);
      }, 480_000);

      const secret = (name: string) => readFileSync(join(etc, name), "utf8").trim();
      const daemon = (...args: string[]) =>
        withoutRepo(fixtures, "centrovision-sync", ["--config", join(etc, "sync.toml"), ...args]);

      it("sets the server up in one run with the package's daemon and says what it could not do here", () => {
        expect(setup.status, output(setup)).toBe(0);
        // The PostgreSQL the package's dependency installed, without --pg-version.
        expect(setup.stdout).toContain(
          `== PostgreSQL ${pgVersion()}\nPostgreSQL ${pgVersion()} is installed`,
        );
        expect(setup.stdout).toContain(`pg_createcluster ${pgVersion()} ${cluster} --port ${port}`);
        expect(setup.stdout).toContain(
          `the daemon is the centrovision-sync package's: /usr/bin/centrovision-sync (${version})`,
        );
        expect(setup.stdout).toContain("--root: the host firewall is left alone");
        // --root never enables a unit; the daemon's is the package's.
        expect(setup.stdout).toContain(
          "centrovision-sync.service (the package's, in /lib/systemd/system) is not enabled; run the daemon with: /usr/bin/centrovision-sync",
        );
        expect(readFileSync(join(etc, "sync.toml"), "utf8")).toContain(
          "Reference: /usr/share/doc/centrovision-sync/README.md",
        );
        expect(setup.stdout).toMatch(/^node_email = "node-.*@nodes\.centrovision\.invalid"$/m);
        expect(setup.stdout).toContain("Done. Check it with:");
        for (const name of [
          "secrets/admin_password",
          "secrets/db_password",
          "secrets/pc_password",
          "secrets/node_password",
        ]) {
          expect(output(setup)).not.toContain(secret(name));
        }
        expect(output(setup)).not.toContain(cloud.serviceRoleKey);
      });

      it("leaves each secret readable by whom needs it only", () => {
        const mode = (path: string) => {
          const info = statSync(join(etc, path));
          return `${(info.mode & 0o777).toString(8)} ${info.gid === 0 ? "root" : "group"}`;
        };
        expect(mode("secrets/admin_password")).toBe("600 root");
        expect(mode("secrets/pc_password")).toBe("600 root");
        expect(mode("secrets/db_password")).toBe("640 group");
        expect(mode("secrets/node_password")).toBe("640 group");
        expect(mode("sync.toml")).toBe("640 group");
        expect(mode("clients/config.toml")).toBe("600 root");
        expect(mode("tls/clinic-ca.key")).toBe("600 root");
        const readAs = (file: string) =>
          sh("runuser", ["-u", SERVICE_USER, "--", "cat", join(etc, file)]).status;
        expect(readAs("secrets/db_password")).toBe(0);
        expect(readAs("secrets/node_password")).toBe(0);
        expect(readAs("sync.toml")).toBe(0);
        expect(readAs("secrets/admin_password")).not.toBe(0);
        expect(readAs("tls/clinic-ca.key")).not.toBe(0);
        expect(JSON.stringify(snapshot(etc))).not.toContain(sha256(join(fixtures, "service_role_key")));
      });

      it("the installed daemon syncs the cloud's rows into the clinic server with the config it wrote", () => {
        const once = daemon("once");
        expect(once.status, output(once)).toBe(0);
        const doctor = daemon("doctor");
        expect(doctor.status, output(doctor)).toBe(0);
        expect(output(doctor)).not.toContain("María");
      });

      /** verify-full as the desktop does it: the clinic CA only, the address against the IP SAN. */
      const verifyFull = (caFile: string) => ({
        rejectUnauthorized: true,
        ca: readFileSync(caFile, "utf8"),
        checkServerIdentity: (_name: string, cert: Parameters<typeof checkServerIdentity>[1]) =>
          checkServerIdentity("127.0.0.1", cert),
      });
      const connect = (username: string, password: string, ssl: false | ReturnType<typeof verifyFull>) =>
        postgres({
          host: "127.0.0.1",
          port,
          database: "centrovision",
          username,
          password,
          ssl,
          max: 1,
          connect_timeout: 5,
          onnotice: () => {},
        });

      it("a PC connects with the files in clients/ over TLS verify-full; without TLS it is refused", async () => {
        const config = readFileSync(join(etc, "clients/config.toml"), "utf8");
        expect(config).toContain(`url = "postgres://127.0.0.1:${port}/centrovision"`);
        expect(config).toContain(`branch_id = "${branch}"`);
        const pc = connect(
          "centrovision_pc",
          secret("clients/local_server_password"),
          verifyFull(join(etc, "clients/clinic-ca.pem")),
        );
        try {
          const [row] = await pc<{ who: string; ssl: boolean }[]>`
          select current_user as who, ssl from pg_stat_ssl where pid = pg_backend_pid()`;
          expect(row).toEqual({ who: "centrovision_pc", ssl: true });
          // The PC's login reads no patient by itself: a staff member's clinic session decides.
          await expect(pc`select id from patients`).rejects.toThrow("permission denied for table patients");
        } finally {
          await pc.end();
        }
        const plain = connect("centrovision_pc", secret("clients/local_server_password"), false);
        await expect(plain`select 1`).rejects.toThrow(/pg_hba\.conf rejects connection .* no encryption/);
        await plain.end();
      });

      it("the nightly backup dumps, restores into a scratch database and checks the patients", () => {
        const backup = sh("runuser", [
          "-u",
          "postgres",
          "--",
          join(root, "usr/local/sbin/centrovision-backup"),
        ]);
        expect(backup.status, output(backup)).toBe(0);
        expect(backup.stdout).toMatch(
          /^backup ok: .*\/var\/backups\/centrovision\/centrovision-\d{8}-\d{6}\.dump$/m,
        );
      });

      it("run again, it changes no file and keeps the node credential", () => {
        const before = snapshot(root);
        const again = withoutRepo(fixtures, "centrovision-setup-server", setupArgs, 300_000);
        expect(again.status, output(again)).toBe(0);
        expect(again.stdout).toContain(`keep the node credential in ${etc}/sync.toml`);
        expect(again.stdout).toContain(`keep existing ${etc}/secrets/db_password (never overwritten)`);
        expect(snapshot(root)).toEqual(before);
      });
    });

    /** The cloud's patient in the clinic database, as its admin login reads it (removal and purge keep it). */
    const patientsKept = async () => {
      const sql = postgres({
        host: "127.0.0.1",
        port,
        database: "centrovision",
        username: "centrovision_admin",
        password: readFileSync(join(etc, "secrets/admin_password"), "utf8").trim(),
        max: 1,
        onnotice: () => {},
      });
      try {
        return await sql`select first_name from patients where id = ${patient}`;
      } finally {
        await sql.end();
      }
    };

    it("upgraded over itself, changes no config, secret or file of the setup", () => {
      // What an IT person may have changed: the setup's files, and the config where the service reads it.
      writeFileSync(
        join(etc, "sync.toml"),
        `${readFileSync(join(etc, "sync.toml"), "utf8")}# changed by hand\n`,
      );
      mkdirSync("/etc/centrovision", { recursive: true });
      const realConfig = "/etc/centrovision/sync.toml";
      if (!realConfigDirExisted) writeFileSync(realConfig, "# changed by hand\n", { mode: 0o640 });
      const before = { root: snapshot(root), etc: snapshot("/etc/centrovision") };
      const [upgrade, seconds] = timed(() => apt("install", "--reinstall", "--no-install-recommends", deb));
      expect(upgrade.status, output(upgrade)).toBe(0);
      expect(upgrade.stdout).toContain(`Setting up ${PACKAGE} (${version})`);
      console.log(`[sync-daemon tests] upgraded over itself in ${seconds.toFixed(1)} s`);
      expect({ root: snapshot(root), etc: snapshot("/etc/centrovision") }).toEqual(before);
      if (!existsSync("/run/systemd/system")) {
        expect(upgrade.stdout).toContain(
          "systemd is not running here: centrovision-sync.service is installed, not enabled",
        );
      }
      expect(withoutRepo(fixtures, "centrovision-sync", ["--version"]).stdout.trim()).toBe(PRODUCT_VERSION);
    });

    it("removed, its files go and the config, the service user and the database stay; purged, the same, and it says so", async () => {
      const before = { root: snapshot(root), etc: snapshot("/etc/centrovision") };
      const [removed, removeSeconds] = timed(() => apt("remove", PACKAGE));
      expect(removed.status, output(removed)).toBe(0);
      expect(dpkgStatus(PACKAGE)).toMatch(/^deinstall ok config-files/);
      for (const path of [
        "/usr/bin/centrovision-sync",
        "/usr/sbin/centrovision-setup-server",
        LIB,
        "/lib/systemd/system/centrovision-sync.service",
      ]) {
        expect(existsSync(path), path).toBe(false);
      }
      expect(removed.stdout).toContain(
        "centrovision-sync: removed. Kept: the clinic database, /etc/centrovision",
      );
      expect(await patientsKept()).toEqual([{ first_name: "María José" }]);

      const [purged, purgeSeconds] = timed(() => apt("purge", PACKAGE));
      expect(purged.status, output(purged)).toBe(0);
      expect(present(PACKAGE)).toBe(false);
      expect(purged.stdout).toContain("centrovision-sync: purged. Kept: /etc/centrovision");
      expect({ root: snapshot(root), etc: snapshot("/etc/centrovision") }).toEqual(before);
      expect(sh("id", [SERVICE_USER]).status).toBe(0);
      expect(await patientsKept()).toEqual([{ first_name: "María José" }]);
      // Nothing of the package runs on.
      expect(sh("pgrep", ["-f", LIB]).stdout).toBe("");
      console.log(
        `[sync-daemon tests] removed in ${removeSeconds.toFixed(1)} s, purged in ${purgeSeconds.toFixed(1)} s`,
      );
    });
  },
);
