import { existsSync } from "node:fs";
import { statfs } from "node:fs/promises";
import { dirname } from "node:path";
import { isCvError } from "@centrovision/core";
import { refuseNewerDatabase } from "@centrovision/core/migrations";
import type { NodeInfo } from "@centrovision/sync-engine";
import postgres from "postgres";
import { type DaemonConfig, redactUrl } from "./config/load-config.js";
import { pendingMigrations, readMigrations, SHIPPED_MIGRATIONS_DIR } from "./migrations.js";
import { createPeers } from "./peers.js";

export interface DoctorCheck {
  readonly check: string;
  readonly status: "ok" | "warn" | "fail";
  readonly detail: string;
  /** What to do, when not ok. */
  readonly fix?: string;
}

const LOOPBACK = new Set(["localhost", "127.0.0.1", "[::1]", ""]);
const SKEW_WARN_MS = 2_000;
const SKEW_FAIL_MS = 60_000;
const GIB = 1024 ** 3;

const ok = (check: string, detail: string): DoctorCheck => ({ check, status: "ok", detail });
const warn = (check: string, detail: string, fix: string): DoctorCheck => ({
  check,
  status: "warn",
  detail,
  fix,
});
const fail = (check: string, detail: string, fix: string): DoctorCheck => ({
  check,
  status: "fail",
  detail,
  fix,
});

const messageOf = (error: unknown) =>
  isCvError(error) ? error.message : `${(error as { code?: string }).code ?? "error"}`;

async function clinicChecks(config: DaemonConfig, checks: DoctorCheck[]): Promise<void> {
  const url = new URL(config.clinic.url);
  const where = redactUrl(config.clinic.url);
  const sql = postgres(config.clinic.url, { max: 1, onnotice: () => {}, connect_timeout: 5 });
  try {
    const [me] = await sql<
      { user: string; superuser: boolean; member: boolean; ssl: boolean | null; version: string }[]
    >`
      select current_user as user, r.rolsuper as superuser,
             pg_has_role(current_user, 'centrovision_sync', 'member') as member,
             (select ssl from pg_stat_ssl where pid = pg_backend_pid()) as ssl,
             current_setting('server_version') as version
      from pg_roles r where r.rolname = current_user`;
    if (!me) throw new Error("no role row");
    checks.push(ok("clinic database", `${where} answers (PostgreSQL ${me.version})`));
    if (!me.member) {
      checks.push(
        fail("roles", `${me.user} is not in role centrovision_sync`, "run `centrovision-sync init`"),
      );
    } else if (me.superuser) {
      checks.push(
        warn(
          "roles",
          `${me.user} is a superuser`,
          "use a login that is only in role centrovision_sync (least privilege)",
        ),
      );
    } else {
      checks.push(ok("roles", `${me.user} is in role centrovision_sync, not a superuser`));
    }
    const local = LOOPBACK.has(url.hostname) || url.searchParams.has("host");
    if (me.ssl) checks.push(ok("clinic TLS", "the connection is encrypted"));
    else if (local) checks.push(ok("clinic TLS", "local connection (loopback or socket): TLS not needed"));
    else
      checks.push(
        fail(
          "clinic TLS",
          "the connection to the clinic database is not encrypted",
          "add ?sslmode=verify-full to [clinic] url and give the server a certificate (setup-server.sh --cert)",
        ),
      );
    try {
      const dir = config.paths.migrationsDir ?? SHIPPED_MIGRATIONS_DIR;
      await refuseNewerDatabase(sql, await readMigrations(dir));
      const pending = await pendingMigrations(sql, dir);
      checks.push(
        pending.length === 0
          ? ok("migrations", "the clinic database is current")
          : fail(
              "migrations",
              `${pending.length} migration(s) not applied: ${pending.join(", ")}`,
              "run `centrovision-sync init`",
            ),
      );
    } catch (error) {
      checks.push(
        isCvError(error, "conflict")
          ? fail(
              "migrations",
              error.message,
              "upgrade centrovision-sync; never run an older one against this database",
            )
          : fail(
              "migrations",
              `cannot read cv_meta.schema_migrations (${messageOf(error)})`,
              "run `centrovision-sync init`",
            ),
      );
    }
    const [clock] = await sql<{ now: Date }[]>`select clock_timestamp() as now`;
    const skew = clock ? clock.now.getTime() - Date.now() : 0;
    checks.push(
      Math.abs(skew) < SKEW_WARN_MS
        ? ok("clock", `this machine and the clinic database agree (${skew} ms)`)
        : warn(
            "clock",
            `this machine and the clinic database differ by ${skew} ms`,
            "enable NTP: timedatectl set-ntp true",
          ),
    );
  } catch (error) {
    const code = (error as { code?: string }).code;
    const refused = code === "28P01" || code === "28000";
    checks.push(
      fail(
        "clinic database",
        refused
          ? `${where} refused the daemon's login (SQLSTATE ${code})`
          : `${where} does not answer (${code ?? "error"})`,
        refused
          ? "check [clinic] url (user) and password_file/password_env; `centrovision-sync init` creates the login"
          : "start PostgreSQL (systemctl status postgresql) and check [clinic] url",
      ),
    );
  } finally {
    await sql.end({ timeout: 2 });
  }
}

async function nodeChecks(config: DaemonConfig, checks: DoctorCheck[]): Promise<void> {
  const cloudUrl = new URL(config.cloud.url);
  if (cloudUrl.protocol === "https:") checks.push(ok("cloud TLS", "https"));
  else if (LOOPBACK.has(cloudUrl.hostname))
    checks.push(
      warn("cloud TLS", "plain http to a local stack", "use the project's https:// URL in production"),
    );
  else
    checks.push(
      fail(
        "cloud TLS",
        "plain http to a remote host: the node's password and tokens would travel in clear",
        "use the project's https:// URL",
      ),
    );
  const { local, remote } = createPeers(config);
  try {
    const [localNode, remoteNode] = await Promise.allSettled([local.node(), remote.node()]);
    let cloud: NodeInfo | undefined;
    if (remoteNode.status === "fulfilled") {
      cloud = remoteNode.value;
      checks.push(
        ok("cloud", `${cloudUrl.host} answers node ${config.cloud.nodeEmail} (cloud node ${cloud.nodeName})`),
      );
      const skew = Date.parse(cloud.now) - Date.now();
      if (Math.abs(skew) >= SKEW_FAIL_MS) {
        checks.push(
          fail(
            "cloud clock",
            `the cloud's clock and this machine's differ by ${Math.round(skew / 1000)} s`,
            "enable NTP: timedatectl set-ntp true",
          ),
        );
      } else if (Math.abs(skew) >= SKEW_WARN_MS) {
        checks.push(
          warn(
            "cloud clock",
            `the cloud's clock and this machine's differ by ${skew} ms`,
            "enable NTP: timedatectl set-ntp true",
          ),
        );
      }
    } else {
      const error = remoteNode.reason;
      const denied = isCvError(error, "unauthorized");
      checks.push(
        fail(
          "cloud",
          messageOf(error),
          denied
            ? `the cloud refused the node credential ${config.cloud.nodeEmail}: check [cloud] node_email, node_password_file and anon_key, or make a new one with \`centrovision-sync node create --name "<clinic>" --service-role-key-file <file> --force\``
            : "check the internet connection and [cloud] url; the clinic server keeps serving meanwhile",
        ),
      );
    }
    if (localNode.status === "fulfilled") {
      const node = localNode.value;
      checks.push(
        node.nodeName === config.nodeName
          ? ok("node", `registered as ${node.nodeName} (${node.openConflicts} open conflict(s))`)
          : fail(
              "node",
              `the clinic node is named ${node.nodeName}, the config says ${config.nodeName}`,
              "run `centrovision-sync init`",
            ),
      );
      if (cloud) {
        const drift = Object.keys({ ...node.fingerprint, ...cloud.fingerprint }).filter(
          (table) => node.fingerprint[table] !== cloud.fingerprint[table],
        );
        checks.push(
          drift.length === 0
            ? ok("schema", "the clinic and the cloud have the same synced tables")
            : fail(
                "schema",
                `tables differ between clinic and cloud: ${drift.join(", ")}`,
                "apply the same sql/ migrations on both (init here, the cloud's deployment there)",
              ),
        );
      }
    }
  } finally {
    await Promise.all([local.close(), remote.close()]);
  }
}

async function diskCheck(config: DaemonConfig, checks: DoctorCheck[]): Promise<void> {
  let path = config.paths.dataDir;
  while (!existsSync(path) && dirname(path) !== path) path = dirname(path);
  const stats = await statfs(path);
  const free = stats.bavail * stats.bsize;
  const share = stats.blocks > 0 ? stats.bavail / stats.blocks : 1;
  const detail = `${(free / GIB).toFixed(1)} GiB free (${Math.round(share * 100)}%) at ${path}`;
  if (free < GIB || share < 0.05)
    checks.push(
      fail(
        "disk",
        detail,
        "free space: old backups in /var/backups/centrovision, logs (journalctl --vacuum-size=200M)",
      ),
    );
  else if (share < 0.1) checks.push(warn("disk", detail, "plan more space before PostgreSQL fills the disk"));
  else checks.push(ok("disk", detail));
}

/** Every check, never throwing: what is wrong and what to do. */
export async function runDoctor(config: DaemonConfig): Promise<DoctorCheck[]> {
  const checks: DoctorCheck[] = [ok("config", "valid; secrets readable and private")];
  await clinicChecks(config, checks);
  await nodeChecks(config, checks);
  await diskCheck(config, checks);
  return checks;
}

export function formatDoctor(checks: readonly DoctorCheck[]): string {
  const mark = { ok: "ok  ", warn: "WARN", fail: "FAIL" } as const;
  const lines = checks.map(
    (c) =>
      `[${mark[c.status]}] ${c.check}: ${c.detail}${c.fix === undefined ? "" : `\n       fix: ${c.fix}`}`,
  );
  const failed = checks.filter((c) => c.status === "fail").length;
  lines.push(
    failed === 0 ? "\nAll checks passed." : `\n${failed} check(s) failed: fix them in the order shown.`,
  );
  return lines.join("\n");
}
