import { readFileSync } from "node:fs";
import { createPostgresSource } from "@centrovision/adapter-postgres";
import { createSqliteSource, loadSqliteKey } from "@centrovision/adapter-sqlite";
import { createSupabaseSource } from "@centrovision/adapter-supabase";
import {
  CvError,
  createFailoverRouter,
  type DataSource,
  type FailoverRouter,
  type RouterConfigInput,
  type RouterHooks,
  type TableName,
} from "@centrovision/core";
import {
  type ClientApplier,
  createClientApplier,
  createOfflineTier,
  createPcRouterHooks,
  type OfflineTier,
} from "@centrovision/sync-engine";
import { createClient } from "@supabase/supabase-js";
import WebSocket from "ws";
import { type DesktopConfig, readAccessToken } from "../config.js";

/**
 * The PC's data stack, assembled in this one file: the failover router over the cloud
 * (supabase-js with the user's session), the clinic server (the PC's `centrovision_app` login)
 * and the offline tier (the encrypted SQLite file with its durable outbox), plus the PC's router
 * hooks (carry recent cloud writes onto the clinic server at failover; fail back only when the
 * clinic server and the outbox have nothing left for the cloud).
 */
export interface PcStack {
  readonly router: FailoverRouter;
  readonly offline: OfflineTier;
  close(): Promise<void>;
}

export interface PcStackOptions {
  config: DesktopConfig;
  /** Overrides `config.router` (the demo and tests use short timings). */
  router?: RouterConfigInput;
  /** How often the offline copy (branch, staff, next days' agenda and their patients) is refreshed. Default 60 s. */
  cacheRefreshMs?: number;
  /** How often a non-empty outbox tries to drain when a server answers. Default 2 s. */
  drainIntervalMs?: number;
  /** Receives operational failures (codes and messages, never rows). Default: stderr. */
  onError?: (what: string, error: CvError) => void;
}

/**
 * Stands in for a clinic server that is not configured, so the tiers keep their meaning
 * (index 1 is always "clinic"): it is never available and the router goes cloud → this PC.
 */
function absentClinicServer(): DataSource {
  const down = () =>
    Promise.reject(
      new CvError("unavailable", "[desktop] no clinic server configured ([local_server] in config.toml)"),
    );
  const repository = new Proxy({}, { get: () => down });
  return {
    id: "clinic",
    kind: "postgres",
    capabilities: { transactions: true, changeFeed: false, durable: true, rowLevelSecurity: false },
    probe: down,
    table: <T extends TableName>(_name: T) => repository as ReturnType<DataSource["table"]>,
    close: async () => {},
  } as DataSource;
}

function clinicServer(config: DesktopConfig): { source: DataSource; applier: ClientApplier | undefined } {
  const lan = config.local_server;
  if (lan === undefined) return { source: absentClinicServer(), applier: undefined };
  const url = new URL(lan.url);
  url.username = encodeURIComponent(lan.user);
  url.password = encodeURIComponent(readFileSync(lan.password_file, "utf8").trim());
  return {
    source: createPostgresSource({ id: "clinic", url: url.href, applicationName: "centrovision-desktop" }),
    applier: createClientApplier({ postgres: { url: url.href, timeoutMs: 3_000 }, label: "clinic server" }),
  };
}

export async function createPcStack(options: PcStackOptions): Promise<PcStack> {
  const { config } = options;
  const onError =
    options.onError ??
    ((what: string, error: CvError) => console.error(`[desktop] ${what}: ${error.code}: ${error.message}`));
  const token = readAccessToken(config);
  const cloud = createSupabaseSource({
    id: "cloud",
    url: config.supabase.url,
    key: config.supabase.anon_key,
    ...(token !== undefined && { accessToken: token }),
  });
  const cloudApplier = createClientApplier({
    supabase: {
      url: config.supabase.url,
      timeoutMs: 3_000,
      client: createClient(config.supabase.url, config.supabase.anon_key, {
        // Node 20 has no global WebSocket; supabase-js refuses to build a client without one.
        realtime: { transport: WebSocket as never },
        auth: { persistSession: false, autoRefreshToken: false },
        ...(token !== undefined && { accessToken: async () => token }),
      }),
    },
    label: "cloud",
  });
  const clinic = clinicServer(config);
  const { key } = await loadSqliteKey({ keyFile: config.sqlite.key_file, keychain: config.sqlite.keychain });
  const sqlite = await createSqliteSource({ id: "device", path: config.sqlite.path, key });
  const offline = createOfflineTier({ store: sqlite, scope: { branchId: config.branch_id }, id: "device" });
  const hooks: RouterHooks =
    clinic.applier === undefined
      ? { pendingChanges: (tier) => offline.pendingChanges(tier) }
      : createPcRouterHooks({ clinic: clinic.applier, localPending: () => offline.pendingCount() });
  const router = createFailoverRouter({
    id: "desktop",
    sources: [cloud, clinic.source, offline.source],
    config: { ...config.router, ...options.router },
    hooks,
  });

  const asCv = (error: unknown) =>
    error instanceof CvError
      ? error
      : new CvError("unknown", "[desktop] unexpected failure", { cause: error });
  const draining = offline.autoDrain(
    router.status$,
    { cloud: cloudApplier, ...(clinic.applier !== undefined && { clinic: clinic.applier }) },
    {
      intervalMs: options.drainIntervalMs ?? 2_000,
      onError: (error) => onError("draining the outbox", error),
    },
  );
  // The offline copy is refreshed through the router while it works on a server, one run at a time.
  let refreshTimer: ReturnType<typeof setTimeout> | undefined;
  let closed = false;
  const refreshLoop = async () => {
    if (closed) return;
    if (router.getStatus().mode !== "offline") {
      await offline
        .refresh(router)
        .catch((error: unknown) => onError("refreshing the offline copy", asCv(error)));
    }
    if (!closed) refreshTimer = setTimeout(() => void refreshLoop(), options.cacheRefreshMs ?? 60_000);
  };
  void refreshLoop();

  return {
    router,
    offline,
    async close() {
      closed = true;
      clearTimeout(refreshTimer);
      draining.unsubscribe();
      await router.close();
      await Promise.all([cloudApplier.close(), clinic.applier?.close()]);
    },
  };
}
