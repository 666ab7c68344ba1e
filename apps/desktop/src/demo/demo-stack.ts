import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FailoverRouter, RouterConfigInput } from "@centrovision/core";
import type { OfflineTier } from "@centrovision/offline";
import { createPostgresPeer } from "@centrovision/sync-engine";
import {
  applyMigrations,
  createLink,
  freePort,
  type Link,
  type LocalSupabase,
  makeTestTls,
  type PostgresServer,
  startLocalSupabase,
  startPostgres,
} from "@centrovision/testkit";
import postgres from "postgres";
import { type BackendServer, startBackendServer } from "../backend/server.js";
import type { PcSession } from "../backend/session.js";
import { createPcStack } from "../backend/stack.js";
import { loadDesktopConfig } from "../config.js";
import { startDaemonProcess } from "./daemon-process.js";
import { buildDemoClinic, type DemoClinic, SIGNING_STAFF, seedDemoClinic } from "./seed.js";

/**
 * Router timings for the demo and the e2e tests: the icon should move within a couple of seconds
 * of a button press. The product defaults (core's routerConfigSchema: probe every 1 s, 10 s
 * hold-down before failback) suit a clinic, where flapping matters more than a fast demo.
 */
export const DEMO_ROUTER: RouterConfigInput = {
  probeIntervalMs: 500,
  suspectIntervalMs: 150,
  downIntervalMs: 700,
  downJitter: 0.1,
  probeTimeoutMs: 600,
  rise: 2,
  holdDownMs: 1_500,
  maxHoldDownMs: 3_000,
  maxSwitches: 1_000,
  failbackCheckIntervalMs: 500,
  callTimeoutMs: 4_000,
};

/**
 * The demo's accounts, made in the cloud's Supabase Auth with profiles, roles and both
 * branches. Their passwords are printed when the demo is ready: they are demo accounts.
 */
export const DEMO_ACCOUNTS = {
  receptionist: { ...SIGNING_STAFF.receptionist, password: "recepcion-demo" },
  doctor: { ...SIGNING_STAFF.doctor, password: "doctora-demo" },
  admin: { ...SIGNING_STAFF.admin, password: "direccion-demo" },
} as const;

export interface DemoOptions {
  /** Port of the desktop backend + UI; 0 picks a free one. */
  port?: number;
  /** Folder of the built UI. */
  uiDir?: string;
  log?: (line: string) => void;
  /** The desktop session's clock (tests move it forward to stand for a long outage). */
  now?: () => Date;
  /** The offline copy's periodic refresh. Default 2 s (tests set it long to see what else refreshes it). */
  cacheRefreshMs?: number;
}

export interface Demo {
  readonly url: string;
  /** What every call to the backend must carry (`Authorization: Bearer …`): this launch's secret. */
  readonly secret: string;
  /** The UI's address with the secret in its fragment, to open in a browser. */
  readonly appUrl: string;
  readonly clinic: DemoClinic;
  /** Superuser URL of the cloud database, for checking what reached the cloud. */
  readonly cloudDbUrl: string;
  /** Superuser URL of the clinic server's database, for tests that stand for another PC there. */
  readonly clinicDbUrl: string;
  /**
   * The cloud's and the clinic server's superuser URLs (`CLOUD_DB_URL=…`, `CLINIC_DB_URL=…`), in a
   * file of the user's alone (0600) in the demo's folder, removed when it stops: they carry
   * passwords, so the demo prints this path, never them.
   */
  readonly databaseUrlsFile: string;
  /** The desktop backend's router, for benchmarks that bypass the transport. */
  readonly router: FailoverRouter;
  /** The desktop backend's session (tests renew it by hand instead of waiting for auth-js's 30 s tick). */
  readonly session: PcSession;
  /** The desktop backend's offline tier, for tests that read this PC's copy. */
  readonly offline: OfflineTier;
  readonly accounts: typeof DEMO_ACCOUNTS;
  /** The sync daemon's `/healthz`, `/readyz`, `/status` and `/metrics`. */
  readonly daemonStatusUrl: string;
  setInternet(on: boolean): Promise<void>;
  setClinicServer(on: boolean): Promise<void>;
  stop(): Promise<void>;
}

const APP_LOGIN = { user: "demo_recepcion_pc1", password: "demo-pc-password" };
const SYNC_LOGIN = { user: "demo_sync_daemon", password: "demo-sync-password" };

/** Runs `work` on one short-lived connection to `url` (a superuser's, for set-up and probes). */
export async function onDatabase<T>(url: string, work: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    return await work(sql);
  } finally {
    await sql.end({ timeout: 1 });
  }
}

/** Polls until `ready` holds (readiness, never a fixed sleep); rejects naming `what` after `timeoutMs`. */
export async function waitUntil(
  what: string,
  ready: () => Promise<boolean>,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ready().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`[demo] timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/**
 * Everything embedded: a local Supabase (the cloud), a PostgreSQL clinic server, the sync daemon
 * between them (its own process), a link in front of each (the demo's switches), and one desktop backend with the UI.
 */
export async function startDemo(options: DemoOptions = {}): Promise<Demo> {
  const log = options.log ?? (() => {});
  const cleanups: (() => Promise<unknown>)[] = [];
  const stop = async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
    cleanups.length = 0;
  };
  try {
    const dir = await mkdtemp(join(tmpdir(), "centrovision-demo-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));

    log("arrancando la nube (Supabase local) y el servidor de la clínica (PostgreSQL)…");
    // The clinic server keeps its data in a folder of its own, so the demo can really stop and
    // restart it (startPostgres hands the folder to the server's unprivileged user when root).
    const clinicData = await mkdtemp(join(tmpdir(), "centrovision-demo-clinic-"));
    cleanups.push(() => rm(clinicData, { recursive: true, force: true }));
    // The PC reaches it over TLS checked against the clinic's CA, as on a clinic LAN
    // (setup-server.sh makes that CA); a restart keeps the same certificate.
    const tls = await makeTestTls();
    cleanups.push(() => rm(tls.dir, { recursive: true, force: true }));
    let [cloud, clinicServer] = (await Promise.all([
      startLocalSupabase({ log: () => {} }),
      startPostgres({ dataDir: clinicData, tls }),
    ])) as [LocalSupabase, PostgresServer];
    cleanups.push(
      () => cloud.stop(),
      () => clinicServer.stop(),
    );
    const clinicDbUrl = await clinicServer.createDatabase("centrovision");
    await applyMigrations(clinicDbUrl);
    await onDatabase(clinicDbUrl, async (sql) => {
      await sql.unsafe(
        `create role ${APP_LOGIN.user} login password '${APP_LOGIN.password}' in role centrovision_app`,
      );
      await sql.unsafe(
        `create role ${SYNC_LOGIN.user} login password '${SYNC_LOGIN.password}' in role centrovision_sync`,
      );
    });

    const [receptionist, doctor, admin] = await Promise.all([
      cloud.createUser(DEMO_ACCOUNTS.receptionist),
      cloud.createUser(DEMO_ACCOUNTS.doctor),
      cloud.createUser(DEMO_ACCOUNTS.admin),
    ]);
    const clinic = buildDemoClinic(undefined, {
      receptionist: receptionist.id,
      doctor: doctor.id,
      admin: admin.id,
    });
    await onDatabase(cloud.dbUrl, (sql) => seedDemoClinic(sql, clinic));

    const cloudUrl = new URL(cloud.url);
    const internet: Link = await createLink({ target: { host: "127.0.0.1", port: Number(cloudUrl.port) } });
    const lan: Link = await createLink({ target: { host: "127.0.0.1", port: clinicServer.port } });
    cleanups.push(
      () => internet.close(),
      () => lan.close(),
    );
    const cloudViaInternet = `http://127.0.0.1:${internet.port}`;

    // The daemon runs on the clinic server, so it loses the cloud with the internet and stops
    // with the server: it reaches both through the links.
    const daemon = await startDaemonProcess({
      dir,
      cloudUrl: cloudViaInternet,
      anonKey: cloud.anonKey,
      serviceRoleKey: cloud.serviceRoleKey,
      clinicName: "Clínica Demo",
      branches: clinic.branches.map((branch) => branch.name),
      clinicUrl: `postgres://${SYNC_LOGIN.user}@127.0.0.1:${lan.port}/centrovision`,
      clinicPassword: SYNC_LOGIN.password,
      httpPort: await freePort(),
    });
    cleanups.push(() => daemon.stop());
    log("primera sincronización nube → servidor de la clínica…");
    await waitUntil("the first sync", async () => (await fetch(`${daemon.statusUrl}/readyz`)).ok);
    // Conflict review reads the clinic server with the sync role, as the daemon's CLI does.
    const conflicts = createPostgresPeer({
      url: `postgres://${SYNC_LOGIN.user}:${SYNC_LOGIN.password}@127.0.0.1:${lan.port}/centrovision`,
      timeoutMs: 3_000,
    });
    cleanups.push(() => conflicts.close());

    const secret = async (name: string, content: string) => {
      const path = join(dir, name);
      await writeFile(path, content, { mode: 0o600 });
      await chmod(path, 0o600);
      return path;
    };
    const databaseUrlsFile = await secret(
      "database-urls.env",
      [
        '# The demo\'s databases as their superuser (sh: . this-file; psql "$CLOUD_DB_URL").',
        `CLOUD_DB_URL='${cloud.dbUrl}'`,
        `CLINIC_DB_URL='${clinicDbUrl}'`,
        "",
      ].join("\n"),
    );
    await secret("clinic-db-password", APP_LOGIN.password);
    const configFile = await secret(
      "config.toml",
      [
        `branch_id = "${clinic.branches[0]?.id}"`,
        "[supabase]",
        `url = "${cloudViaInternet}"`,
        `anon_key = "${cloud.anonKey}"`,
        "[local_server]",
        `url = "postgres://127.0.0.1:${lan.port}/centrovision"`,
        `user = "${APP_LOGIN.user}"`,
        `password_file = "clinic-db-password"`,
        `tls = "verify-full"`,
        `ca_file = "${tls.caFile}"`,
        "[sqlite]",
        `path = "local/clinic.cvdb"`,
        `key_file = "local.key"`,
        `keychain = "off"`,
      ].join("\n"),
    );
    const config = loadDesktopConfig(configFile);
    const stack = await createPcStack({
      config,
      router: DEMO_ROUTER,
      cacheRefreshMs: options.cacheRefreshMs ?? 2_000,
      drainIntervalMs: 500,
      ...(options.now !== undefined && { now: options.now }),
    });
    cleanups.push(() => stack.close());
    let clinicUp = true;
    let clinicSwitch: Promise<void> = Promise.resolve();
    const controls = {
      setInternet: async (on: boolean) => (on ? internet.pass() : internet.blackhole()),
      // A stopped server refuses connections: the PCs and the daemon see exactly that.
      // Really stops the clinic's PostgreSQL (connections die, the port closes) and starts it
      // again on the same data and port; one switch at a time.
      setClinicServer: (on: boolean) => {
        clinicSwitch = clinicSwitch.then(async () => {
          if (on === clinicUp) return;
          if (on) {
            const { port, password } = clinicServer;
            clinicServer = await startPostgres({ dataDir: clinicData, port, password, tls });
          } else {
            await clinicServer.stop();
          }
          clinicUp = on;
        });
        return clinicSwitch;
      },
    };
    const switchTo = async (what: "internet" | "clinicServer", on: boolean) => {
      await (what === "internet" ? controls.setInternet(on) : controls.setClinicServer(on));
      return { [what]: on };
    };
    const server: BackendServer = await startBackendServer({
      context: {
        router: stack.router,
        homeBranchId: config.branch_id,
        session: stack.session,
        sync: conflicts,
        offline: stack.offline,
        audit: stack.audit,
      },
      port: options.port ?? 0,
      ...(options.uiDir !== undefined && { uiDir: options.uiDir }),
      routes: {
        "POST /demo/internet/off": () => switchTo("internet", false),
        "POST /demo/internet/on": () => switchTo("internet", true),
        "POST /demo/clinic-server/off": () => switchTo("clinicServer", false),
        "POST /demo/clinic-server/on": () => switchTo("clinicServer", true),
        "GET /demo/state": async () => ({
          internet: internet.mode.kind === "pass",
          clinicServer: clinicUp,
          branches: clinic.branches,
        }),
      },
    });
    cleanups.push(() => server.close());
    return {
      url: server.url,
      secret: server.secret,
      appUrl: server.appUrl,
      clinic,
      cloudDbUrl: cloud.dbUrl,
      clinicDbUrl,
      databaseUrlsFile,
      router: stack.router,
      session: stack.session,
      offline: stack.offline,
      accounts: DEMO_ACCOUNTS,
      daemonStatusUrl: daemon.statusUrl,
      ...controls,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
