import { spawnSync } from "node:child_process";
import { createHash, randomUUID } from "node:crypto";
import {
  chmodSync,
  existsSync,
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
import { freePort } from "@centrovision/testkit";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

// setup-server.sh run for real, as root, on this machine: Debian's PostgreSQL (installed by the
// script when missing), a throwaway cluster on a free port, every file under a throwaway --root,
// the daemon from this checkout (--from-checkout), and the run's local Supabase as the cloud.
// What it cannot do here: systemd is not the init system in this container, so PostgreSQL is run
// with pg_ctlcluster and the units are written but not enabled (the script says so; the dry-run
// tests show the systemd steps); the copy to /opt and `npm ci` are replaced by --from-checkout.
const SCRIPT = fileURLToPath(new URL("../deploy/setup-server.sh", import.meta.url));
const MAKE_TLS = fileURLToPath(new URL("../deploy/make-clinic-tls.sh", import.meta.url));
const SERVICE_USER = "centrovision-sync";

const sh = (command: string, args: string[], timeout = 120_000) =>
  spawnSync(command, args, {
    encoding: "utf8",
    timeout,
    env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
  });

/**
 * The PostgreSQL major version to set up: the one installed, else the one Debian's `postgresql`
 * depends on (the script installs it). Undefined, with the reason, when this machine cannot.
 */
function postgresVersion(): { version?: string; reason?: string } {
  if (process.getuid?.() !== 0) return { reason: "it runs only as root (CI runs as root)" };
  const installed = existsSync("/usr/lib/postgresql")
    ? readdirSync("/usr/lib/postgresql").filter((v) => existsSync(`/usr/lib/postgresql/${v}/bin/postgres`))
    : [];
  if (installed.length > 0) return { version: installed.sort().at(-1) };
  if (sh("apt-get", ["update", "-q"], 180_000).status !== 0) return { reason: "apt-get update failed" };
  const depends = /Depends: postgresql-(\d+)\b/.exec(sh("apt-cache", ["depends", "postgresql"]).stdout);
  return depends?.[1] ? { version: depends[1] } : { reason: "apt-cache knows no postgresql package" };
}

const { version, reason } = postgresVersion();
if (!version) console.warn(`[sync-daemon tests] setup-server.sh is not run for real: ${reason}`);

const sha256 = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");

/** Every file under `dir` with its content hash, mode and owner (what a second run must not change). */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    const info = statSync(path);
    out[path] = `${sha256(path)} ${(info.mode & 0o777).toString(8)} ${info.uid}:${info.gid}`;
  }
  return out;
}

describe.skipIf(!version)("setup-server.sh, run for real on this machine", () => {
  const cloud = inject("cloud");
  const cluster = `cvsetup${randomUUID().slice(0, 8)}`;
  const root = mkdtempSync(join(tmpdir(), "cv-setup-root-"));
  const fixtures = mkdtempSync(join(tmpdir(), "cv-setup-in-"));
  const etc = join(root, "etc/centrovision");
  const branch = randomUUID();
  const patient = randomUUID();
  const userExisted = sh("id", [SERVICE_USER]).status === 0;
  let port = 0;
  let first: ReturnType<typeof sh>;
  let cloudSql: postgres.Sql;
  let args: string[];

  beforeAll(async () => {
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
    args = [
      SCRIPT,
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
      "--pg-version",
      version ?? "",
      "--cluster",
      cluster,
      "--port",
      String(port),
      "--root",
      root,
      "--from-checkout",
    ];
    first = sh("bash", args, 420_000);
  }, 480_000);

  afterAll(async () => {
    await cloudSql?.end();
    sh("pg_dropcluster", ["--stop", version ?? "", cluster]);
    // pg_dropcluster leaves the files it did not make (the script's TLS pair and conf.d).
    rmSync(`/etc/postgresql/${version}/${cluster}`, { recursive: true, force: true });
    if (!userExisted) sh("userdel", [SERVICE_USER]);
    rmSync(root, { recursive: true, force: true });
    rmSync(fixtures, { recursive: true, force: true });
  });

  const secret = (name: string) => readFileSync(join(etc, name), "utf8").trim();
  /** A connection to the new cluster over 127.0.0.1 (`ssl` per test). */
  const target = (username: string, password: string) => ({
    host: "127.0.0.1",
    port,
    database: "centrovision",
    username,
    password,
    max: 1,
    connect_timeout: 5,
    onnotice: () => {},
  });

  it("sets the server up in one run and says what it could not do here", () => {
    expect(first.status, first.stdout + first.stderr).toBe(0);
    expect(first.stdout).toContain(`pg_createcluster ${version} ${cluster} --port ${port}`);
    expect(first.stdout).toContain("Done. Check it with:");
    if (!existsSync("/run/systemd/system"))
      expect(first.stdout).toContain("no systemd here: PostgreSQL is started with pg_ctlcluster");
    // --root never enables a unit: they are written for the IT person to see.
    expect(first.stdout).toContain("centrovision-sync.service is written, not enabled");
    expect(first.stdout).toMatch(/^node_email = "node-.*@nodes\.centrovision\.invalid"$/m);
    // No secret reached the output.
    for (const name of [
      "secrets/admin_password",
      "secrets/db_password",
      "secrets/pc_password",
      "secrets/node_password",
    ]) {
      expect(first.stdout + first.stderr).not.toContain(secret(name));
    }
    expect(first.stdout + first.stderr).not.toContain(cloud.serviceRoleKey);
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
    const readAs = (file: string) => sh("runuser", ["-u", SERVICE_USER, "--", "cat", join(etc, file)]).status;
    expect(readAs("secrets/db_password")).toBe(0);
    expect(readAs("secrets/node_password")).toBe(0);
    expect(readAs("sync.toml")).toBe(0);
    expect(readAs("secrets/admin_password")).not.toBe(0);
    expect(readAs("tls/clinic-ca.key")).not.toBe(0);
    expect(existsSync(join(fixtures, "service_role_key"))).toBe(true);
    expect(JSON.stringify(snapshot(etc))).not.toContain(sha256(join(fixtures, "service_role_key")));
  });

  /** verify-full as the desktop does it: the clinic CA only, the address against the IP SAN. */
  const verifyFull = (caFile: string) => ({
    rejectUnauthorized: true,
    ca: readFileSync(caFile, "utf8"),
    checkServerIdentity: (_name: string, cert: Parameters<typeof checkServerIdentity>[1]) =>
      checkServerIdentity("127.0.0.1", cert),
  });
  const whoAmI = async (
    options: ReturnType<typeof target> & { ssl: false | ReturnType<typeof verifyFull> },
  ) => {
    const sql = postgres(options);
    try {
      const [row] = await sql<{ who: string; ssl: boolean }[]>`
        select current_user as who, ssl from pg_stat_ssl where pid = pg_backend_pid()`;
      return {
        ...row,
        patients: await sql`select id from patients`.then(
          (rows) => rows.length,
          (e: Error) => e.message,
        ),
      };
    } finally {
      await sql.end();
    }
  };

  it("the daemon syncs the cloud's rows into the clinic server with the config it wrote", () => {
    const once = sh(join(root, "usr/local/bin/centrovision-sync"), [
      "--config",
      join(etc, "sync.toml"),
      "once",
    ]);
    expect(once.status, once.stdout + once.stderr).toBe(0);
    const doctor = sh(join(root, "usr/local/bin/centrovision-sync"), [
      "--config",
      join(etc, "sync.toml"),
      "doctor",
    ]);
    expect(doctor.status, doctor.stdout + doctor.stderr).toBe(0);
    expect(doctor.stdout + doctor.stderr).not.toContain("María");
  });

  it("a PC connects with the files in clients/ over TLS verify-full; without TLS, or trusting another CA, it is refused", async () => {
    const pc = (ssl: false | ReturnType<typeof verifyFull>) =>
      whoAmI({ ...target("centrovision_pc", secret("clients/local_server_password")), ssl });
    const config = readFileSync(join(etc, "clients/config.toml"), "utf8");
    expect(config).toContain(`url = "postgres://127.0.0.1:${port}/centrovision"`);
    expect(config).toContain(`branch_id = "${branch}"`);
    // The PC's login reads no patient by itself: a staff member's clinic session decides.
    expect(await pc(verifyFull(join(etc, "clients/clinic-ca.pem")))).toEqual({
      who: "centrovision_pc",
      ssl: true,
      patients: "permission denied for table patients",
    });
    await expect(pc(false)).rejects.toThrow(/pg_hba\.conf rejects connection .* no encryption/);
    const other = join(fixtures, "other-ca");
    expect(sh("bash", [MAKE_TLS, other, "127.0.0.1"]).status).toBe(0);
    await expect(pc(verifyFull(join(other, "clinic-ca.pem")))).rejects.toMatchObject({
      code: expect.stringMatching(/^(UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN)$/),
    });
    // The admin login (migrations) is local only; the clinic server holds the cloud's patient.
    const sql = postgres({ ...target("centrovision_admin", secret("secrets/admin_password")) });
    try {
      expect(await sql`select first_name from patients where id = ${patient}`).toEqual([
        { first_name: "María José" },
      ]);
    } finally {
      await sql.end();
    }
  });

  it("the nightly backup dumps, restores into a scratch database and checks the patients", () => {
    const backup = sh("runuser", ["-u", "postgres", "--", join(root, "usr/local/sbin/centrovision-backup")]);
    expect(backup.status, backup.stdout + backup.stderr).toBe(0);
    expect(backup.stdout).toMatch(
      /^backup ok: .*\/var\/backups\/centrovision\/centrovision-\d{8}-\d{6}\.dump$/m,
    );
    const dumps = readdirSync(join(root, "var/backups/centrovision"));
    expect(dumps).toHaveLength(1);
    expect(dumps[0]).toMatch(/\.dump$/);
  });

  it("run again, it changes no file and keeps the node credential", () => {
    const before = snapshot(root);
    const again = sh("bash", args, 300_000);
    expect(again.status, again.stdout + again.stderr).toBe(0);
    expect(again.stdout).toContain(`keep the node credential in ${etc}/sync.toml`);
    expect(again.stdout).toContain(`keep existing ${etc}/secrets/db_password (never overwritten)`);
    expect(again.stdout).toContain(`cluster ${version}/${cluster} exists`);
    expect(snapshot(root)).toEqual(before);
  });
});
