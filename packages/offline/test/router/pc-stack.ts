import { randomBytes, randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createPostgresSource, tlsOptions } from "@centrovision/adapter-postgres";
import { createSqliteSource } from "@centrovision/adapter-sqlite";
import { createSupabaseSource } from "@centrovision/adapter-supabase";
import {
  type ConnectionMode,
  createFailoverRouter,
  type DataSource,
  type FailoverRouter,
  type RouterConfigInput,
  TABLE_NAMES,
} from "@centrovision/core";
import {
  createPostgresPeer,
  createSupabasePeer,
  createSyncEngine,
  type SyncEngine,
} from "@centrovision/sync-engine";
import {
  applyMigrations,
  clinicSession,
  createLink,
  type Link,
  type LocalSupabase,
  type PostgresServer,
  startLocalSupabase,
} from "@centrovision/testkit";
import { type Consultation, consultation } from "@centrovision/testkit/nodes";
import postgres from "postgres";
import { filter, firstValueFrom, timeout } from "rxjs";
import { type ClientApplier, createClientApplier, createPcRouterHooks } from "../../src/index.js";

/**
 * A clinic as a PC sees it, every piece real: the cloud is a local Supabase reached with a
 * doctor's session, the clinic server a PostgreSQL database reached with a `centrovision_app`
 * login acting as the same doctor (a clinic session; the same row-level policies as the cloud,
 * the doctor's membership brought by the sync), this PC's tier an encrypted SQLite file, and a
 * sync engine (the clinic daemon) between cloud and clinic every 300 ms. Three fault links: the PC's internet, the daemon's internet
 * (the same cable in a clinic: `internet()` sets both) and the PC's LAN to the clinic server.
 *
 * Needs no vitest: the router bench builds the same stack.
 */
export interface PcStack {
  readonly supabase: LocalSupabase;
  /** Superuser connections, bypassing everything: the direct probes. */
  readonly cloudSql: postgres.Sql;
  readonly clinicSql: postgres.Sql;
  readonly pcInternet: Link;
  readonly daemonInternet: Link;
  readonly lan: Link;
  readonly engine: SyncEngine;
  /** A consultation at the doctor's branch, present on every tier before the router starts. */
  readonly seed: Consultation;
  /** The internet as a whole: the PC's and the daemon's links together. */
  internet(mode: "pass" | "blackhole" | "refuse"): Promise<void>;
  /** A router over fresh sources; closed by `close()`. `config` overrides the router's numbers. */
  router(config?: RouterConfigInput): Promise<PcRouter>;
  cloudSource(): DataSource;
  clinicSource(): DataSource;
  close(): Promise<void>;
}

export interface PcRouter {
  readonly router: FailoverRouter;
  /** This PC's SQLite tier (owned by the router). */
  readonly local: DataSource;
}

const APP = { user: "cv_router_pc", password: "router-pc-test-password" };
const SYNC = { user: "cv_router_daemon", password: "router-daemon-test-password" };

async function ensureLogin(admin: postgres.Sql, login: typeof APP, role: string): Promise<void> {
  await admin.unsafe(`
    do $$ begin
      create role ${login.user} login password '${login.password}' in role ${role};
    exception when duplicate_object or unique_violation then null;
    end $$`);
}

function withLogin(url: string, login: typeof APP): string {
  const parsed = new URL(url);
  parsed.username = login.user;
  parsed.password = login.password;
  return parsed.href;
}

/** Resolves when the router's mode is `mode`; rejects after `ms`. */
export function modeReached(router: FailoverRouter, mode: ConnectionMode, ms = 15_000): Promise<unknown> {
  return firstValueFrom(
    router.status$.pipe(
      filter((status) => status.mode === mode),
      timeout(ms),
    ),
  );
}

export interface PcStackOptions {
  /**
   * Puts the clinic server on a PostgreSQL of its own (a test may stop and restart it); default
   * `server`. One started with `tls`: the PC reaches it over TLS, verified against its CA.
   */
  clinicServer?: PostgresServer;
}

/** `server` hosts the cloud (and the clinic database, unless `options.clinicServer` is given). */
export async function startPcStack(server: PostgresServer, options: PcStackOptions = {}): Promise<PcStack> {
  const clinicHost = options.clinicServer ?? server;
  const supabase = await startLocalSupabase({ postgres: server, log: () => {} });
  const gateway = new URL(supabase.url);
  const target = { host: gateway.hostname, port: Number(gateway.port) };
  const [pcInternet, daemonInternet] = await Promise.all([createLink({ target }), createLink({ target })]);
  const database = `router_clinic_${randomUUID().slice(0, 8)}`;
  const clinicUrl = await clinicHost.createDatabase(database);
  await applyMigrations(clinicUrl);
  const admin = postgres(clinicHost.url, { max: 1, onnotice: () => {} });
  await ensureLogin(admin, APP, "centrovision_app");
  await ensureLogin(admin, SYNC, "centrovision_sync");
  await admin.end();
  const lan = await createLink({ target: { host: "127.0.0.1", port: clinicHost.port } });
  // No type fetch: it runs on a promise nobody awaits, and a restart scenario resets connections.
  const cloudSql = postgres(supabase.dbUrl, { max: 4, onnotice: () => {}, fetch_types: false });
  const clinicSql = postgres(clinicUrl, { max: 4, onnotice: () => {}, fetch_types: false });
  await cloudSql`select cv_sync_init('cloud')`;
  await clinicSql`select cv_sync_init('clinic')`;

  const seed = consultation();
  await cloudSql.begin(async (tx) => {
    for (const table of TABLE_NAMES.slice(0, TABLE_NAMES.indexOf("appointments"))) {
      await tx`insert into ${tx(table)} ${tx(seed[table])}`;
    }
  });
  const peers = [
    createPostgresPeer({ url: withLogin(clinicUrl, SYNC), timeoutMs: 3_000, label: "clinic server" }),
    createSupabasePeer({
      url: daemonInternet.url(supabase.url),
      key: supabase.serviceRoleKey,
      timeoutMs: 3_000,
      label: "cloud",
    }),
  ] as const;
  const engine = createSyncEngine({
    local: peers[0],
    remote: peers[1],
    intervalMs: 300,
    minBackoffMs: 50,
    maxBackoffMs: 500,
  });
  await engine.syncNow();
  for (let i = 0; i < 50; i++) {
    const [found] = await clinicSql`select 1 from patients where id = ${seed.patients.id}`;
    if (found) break;
    await engine.syncNow();
  }

  const doctorToken = await supabase.mintUserToken(seed.profiles.id);
  // What the cloud's cv_clinic_session would hand the PC at the doctor's online sign-in.
  const clinicToken = await clinicSession(clinicUrl, { userId: seed.profiles.id as string });
  const session = () => clinicToken;
  const appUrl = withLogin(clinicUrl, APP);
  const caFile = clinicHost.tls?.caFile;
  const tls =
    caFile === undefined ? undefined : tlsOptions("verify-full", "127.0.0.1", readFileSync(caFile, "utf8"));
  const cloudSource = () =>
    createSupabaseSource({
      id: "cloud",
      url: pcInternet.url(supabase.url),
      key: supabase.anonKey,
      accessToken: doctorToken,
      callTimeoutMs: 2_000,
      probeTimeoutMs: 500,
    });
  const clinicSource = () =>
    createPostgresSource({
      id: "clinic",
      url: lan.url(appUrl),
      connectTimeoutMs: 1_000,
      callTimeoutMs: 2_000,
      probeTimeoutMs: 500,
      session,
      ...(caFile !== undefined && { ssl: { mode: "verify-full", caFile } }),
    });
  const routers: FailoverRouter[] = [];
  const appliers: ClientApplier[] = [];
  const dirs: string[] = [];

  return {
    supabase,
    cloudSql,
    clinicSql,
    pcInternet,
    daemonInternet,
    lan,
    engine,
    seed,
    async internet(mode) {
      await Promise.all([pcInternet.set({ kind: mode }), daemonInternet.set({ kind: mode })]);
    },
    cloudSource,
    clinicSource,
    async router(config) {
      const dir = await mkdtemp(join(tmpdir(), "cv-router-pc-"));
      dirs.push(dir);
      const local = await createSqliteSource({
        id: "device",
        path: join(dir, "pc.cvdb"),
        key: randomBytes(32),
      });
      // The PC's file holds what it needs to work offline: its branch and patients.
      for (const table of ["branches", "rooms", "profiles", "patients"] as const) {
        await local.table(table).upsert(seed[table] as never);
      }
      const applier = createClientApplier({
        postgres: { url: lan.url(appUrl), timeoutMs: 3_000, session, ...(tls !== undefined && { ssl: tls }) },
      });
      const router = createFailoverRouter({
        sources: [cloudSource(), clinicSource(), local],
        hooks: createPcRouterHooks({ clinic: applier, timeoutMs: 2_000 }),
        ...(config && { config }),
      });
      routers.push(router);
      appliers.push(applier);
      return { router, local };
    },
    async close() {
      await Promise.all(routers.map((router) => router.close()));
      await Promise.all(appliers.map((applier) => applier.close()));
      await engine.stop();
      await Promise.all(peers.map((peer) => peer.close()));
      await Promise.all([cloudSql.end(), clinicSql.end()]);
      await Promise.all([pcInternet.close(), daemonInternet.close(), lan.close()]);
      await supabase.stop();
      const drop = postgres(clinicHost.url, { max: 1, onnotice: () => {} });
      await drop.unsafe(`drop database if exists "${database}" with (force)`);
      await drop.end();
      await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
    },
  };
}
