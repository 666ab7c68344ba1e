import { readFileSync } from "node:fs";
import { createPostgresSource, tlsOptions } from "@centrovision/adapter-postgres";
import { createSqliteSource, loadSqliteKey } from "@centrovision/adapter-sqlite";
import { createSupabaseSource } from "@centrovision/adapter-supabase";
import {
  type ConnectionStatus,
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
} from "@centrovision/offline";
import type { SupabaseRpcClient } from "@centrovision/sync-engine";
import { createClient } from "@supabase/supabase-js";
import {
  combineLatest,
  distinctUntilChanged,
  EMPTY,
  exhaustMap,
  filter,
  map,
  merge,
  type Observable,
  shareReplay,
  timer,
} from "rxjs";
import WebSocket from "ws";
import type { DesktopConfig } from "../config.js";
import { type ClinicDoor, createClinicDoor } from "./clinic-door.js";
import { oneRunAtATime } from "./one-run-at-a-time.js";
import { createPatientAudit, type PatientAudit } from "./patient-audit.js";
import { createPcSession, type PcSession } from "./session.js";
import { gateTiers, type UsableTiers } from "./tier-gate.js";

/**
 * The PC's data stack, assembled in this one file: the person's session (supabase-js auth, kept
 * encrypted next to the database), the failover router over the cloud (the session's current
 * access token), the clinic server (the PC's `centrovision_app` login acting as the person of the
 * session's clinic session: the same row-level policies as the cloud) and the offline tier (the
 * encrypted SQLite file with its durable outbox), plus the PC's router hooks (carry recent cloud
 * writes onto the clinic server at failover; fail back only when the clinic server and the outbox
 * have nothing left for the cloud).
 */
export interface PcStack {
  readonly router: FailoverRouter;
  readonly offline: OfflineTier;
  readonly session: PcSession;
  /** Openings of patients' records in the audit trail, and the administrator's trail. */
  readonly audit: PatientAudit;
  close(): Promise<void>;
}

export interface PcStackOptions {
  config: DesktopConfig;
  /** Overrides `config.router` (the demo and tests use short timings). */
  router?: RouterConfigInput;
  /** How often the offline copy (branch, staff, next days' agenda and their patients) is refreshed. Default 60 s. */
  cacheRefreshMs?: number;
  /**
   * While this PC works on the clinic server: how often it asks where the server's change log
   * stands (one tiny query), refreshing the offline copy when it moved, so what other PCs book
   * there is on this PC too if the server stops. Default 1 s.
   */
  clinicWatchMs?: number;
  /** How often a non-empty outbox tries to drain when a server answers. Default 2 s. */
  drainIntervalMs?: number;
  /** Receives operational failures (codes and messages, never rows). Default: stderr. */
  onError?: (what: string, error: CvError) => void;
  /** The session's clock (tests move it to skip an outage's hours). */
  now?: () => Date;
  /** How often an online person's clinic session is checked (fetched when missing, renewed hourly). Default 5 s. */
  clinicRenewMs?: number;
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

/**
 * How the PC reaches the clinic server, or undefined when none is configured: its login URL, and
 * TLS as the config asks (every connection to it, data, client apply and sign-in, checks alike).
 */
interface ClinicLink {
  readonly url: string;
  readonly mode: "verify-full" | "disable";
  readonly caFile?: string;
  /** For the `postgres` clients that are not the data source. */
  readonly tls: ReturnType<typeof tlsOptions>;
}

function clinicLink(config: DesktopConfig): ClinicLink | undefined {
  const lan = config.local_server;
  if (lan === undefined) return undefined;
  const url = new URL(lan.url);
  url.username = encodeURIComponent(lan.user);
  url.password = encodeURIComponent(readFileSync(lan.password_file, "utf8").trim());
  const ca = lan.ca_file === undefined ? undefined : readFileSync(lan.ca_file, "utf8");
  return {
    url: url.href,
    mode: lan.tls,
    ...(lan.ca_file !== undefined && { caFile: lan.ca_file }),
    tls: tlsOptions(lan.tls, url.hostname, ca),
  };
}

/** The clinic server's data source and applier, both connecting as the person of `session()`. */
function clinicServer(
  link: ClinicLink | undefined,
  session: () => string | undefined,
): { source: DataSource; applier: ClientApplier | undefined } {
  if (link === undefined) return { source: absentClinicServer(), applier: undefined };
  const { url, mode, caFile, tls } = link;
  return {
    source: createPostgresSource({
      id: "clinic",
      url,
      applicationName: "centrovision-desktop",
      session,
      ssl: { mode, ...(caFile !== undefined && { caFile }) },
    }),
    applier: createClientApplier({
      postgres: { url, timeoutMs: 3_000, session, ssl: tls },
      label: "clinic server",
    }),
  };
}

export async function createPcStack(options: PcStackOptions): Promise<PcStack> {
  const { config } = options;
  const onError =
    options.onError ??
    ((what: string, error: CvError) => console.error(`[desktop] ${what}: ${error.code}: ${error.message}`));
  const { key } = await loadSqliteKey({ keyFile: config.sqlite.key_file, keychain: config.sqlite.keychain });
  const link = clinicLink(config);
  const door: ClinicDoor | undefined =
    link === undefined ? undefined : createClinicDoor({ url: link.url, ssl: link.tls });
  const sqlite = await createSqliteSource({ id: "device", path: config.sqlite.path, key });
  const offline = createOfflineTier({ store: sqlite, scope: { branchId: config.branch_id }, id: "device" });
  const session = await createPcSession({
    url: config.supabase.url,
    anonKey: config.supabase.anon_key,
    sqlitePath: config.sqlite.path,
    sqliteKey: key,
    offlineDays: config.session.offline_days,
    lockoutAttempts: config.session.lockout_attempts,
    lockoutMinutes: config.session.lockout_minutes,
    ...(options.now !== undefined && { now: options.now }),
    ...(door !== undefined && { clinic: door }),
    // The offline copy holds one person's rows: another person's are gone before they sign in. So
    // does the router's memory of recent writes: a carry or a lift runs with the session of whoever
    // is signed in then, and must never send one person's writes as another's.
    beforeSignedIn: async (user) => {
      // First: a carry to this PC's copy that began later would bring the last person's writes.
      if (user.id !== writer) router.forgetWrites();
      writer = user.id;
      await offline.claimCopy(user.id);
    },
    onError,
  });
  const startState = session.current();
  if (startState.signedIn) await offline.claimCopy(startState.user.id);
  /** Whose writes the router may remember: the person signed in (or last signed in). */
  let writer = startState.signedIn ? startState.user.id : null;
  // Both read the session's current token on every request: a renewal needs no rebuild.
  const cloud = createSupabaseSource({
    id: "cloud",
    url: config.supabase.url,
    key: config.supabase.anon_key,
    accessToken: () => session.accessToken(),
  });
  // Built on first use (the first drain, with someone signed in online): supabase-js asks for a
  // token as it is built, and there is none to give before a sign-in.
  let cloudRpc: SupabaseRpcClient | undefined;
  const rpcClient = (): SupabaseRpcClient => {
    cloudRpc ??= createClient(config.supabase.url, config.supabase.anon_key, {
      // Node 20 has no global WebSocket; supabase-js refuses to build a client without one.
      realtime: { transport: WebSocket as never },
      accessToken: async () => session.accessToken(),
    }) as unknown as SupabaseRpcClient;
    return cloudRpc;
  };
  const cloudApplier = createClientApplier({
    supabase: {
      url: config.supabase.url,
      timeoutMs: 3_000,
      client: { rpc: (fn, args) => rpcClient().rpc(fn, args) },
    },
    label: "cloud",
  });
  const clinic = clinicServer(link, () => session.clinicToken());
  const hooks: RouterHooks = createPcRouterHooks({
    ...(clinic.applier !== undefined && { clinic: clinic.applier }),
    cloud: cloudApplier,
    localPending: () => offline.pendingCount(),
    device: offline,
    lastSyncAt: () => offline.syncState().lastSyncAt,
    isSyncing: () => offline.syncState().isSyncing,
  });
  const router = createFailoverRouter({
    id: "desktop",
    sources: [cloud, clinic.source, offline.source],
    config: { ...config.router, ...options.router },
    hooks,
  });

  // The cloud serves only a person signed in online with a good access token, the clinic server
  // only one with a good clinic session. Otherwise (nobody signed in, a device sign-in, sessions
  // expired in an outage and not renewed yet) the router stays below them and the outbox does not
  // drain there: writes wait, none is refused as unauthorized. Re-read on every status too, because
  // a token expires with time alone. A cloud found down serves nobody: the router then goes to the
  // clinic server only for a person with a clinic session, else straight to this PC (the clinic's
  // login alone reads no row, and its refusals would reach the person as "unauthorized").
  const usableNow = (): UsableTiers => {
    const state = session.current();
    const cloudUp = router.getStatus().tiers.cloud.health !== "down";
    return {
      cloud: state.signedIn && state.cloudUsable && cloudUp,
      clinic: state.signedIn && state.clinicUsable,
    };
  };
  const usable$ = merge(session.state$, router.status$).pipe(
    map(usableNow),
    distinctUntilChanged((a, b) => a.cloud === b.cloud && a.clinic === b.clinic),
    shareReplay({ bufferSize: 1, refCount: true }),
  );
  const gate = gateTiers(router, usable$);
  // An online person's clinic session is fetched from the cloud while it may be used: checked every
  // `clinicRenewMs`, so one missing (the cloud could not mint it at the sign-in) comes soon; a held
  // one is renewed hourly.
  const renewing = timer(0, options.clinicRenewMs ?? 5_000)
    .pipe(exhaustMap(() => session.renewClinic()))
    .subscribe();

  const asCv = (error: unknown) =>
    error instanceof CvError
      ? error
      : new CvError("unknown", "[desktop] unexpected failure", { cause: error });
  const draining = offline.autoDrain(
    drainStatus(router.status$, usable$),
    { cloud: cloudApplier, ...(clinic.applier !== undefined && { clinic: clinic.applier }) },
    {
      intervalMs: options.drainIntervalMs ?? 2_000,
      onError: (error) => onError("draining the outbox", error),
    },
  );
  const audit = createPatientAudit({
    router,
    store: sqlite,
    servers: { cloud: cloudApplier, ...(clinic.applier !== undefined && { clinic: clinic.applier }) },
    usable: usableNow,
  });
  const delivering = audit.autoDeliver(
    router.status$,
    () => {
      const state = session.current();
      return state.signedIn ? state.user.id : null;
    },
    {
      intervalMs: options.drainIntervalMs ?? 2_000,
      onError: (error) => onError("delivering record openings kept on this PC", error),
    },
  );
  // The offline copy is refreshed through the router while it works on a server, one run at a
  // time: every `cacheRefreshMs`, and as soon as a signed-in person is served by a server (after a
  // sign-in, or when the router gets back to one); nobody signed in: no refresh, the clinic login
  // alone proves no person.
  const served$ = merge(session.state$, router.status$).pipe(
    map(() => {
      const state = session.current();
      return state.signedIn && router.getStatus().mode !== "offline" ? state.user.id : null;
    }),
    distinctUntilChanged(),
    filter((who) => who !== null),
  );
  // On the clinic server, the other PCs' writes (and the cloud's, as the daemon brings them) move
  // its log: each move is a refresh, so the copy trails the server by about one watch period.
  const clinicApplier = clinic.applier;
  const clinicMoved$ =
    clinicApplier === undefined
      ? EMPTY
      : timer(0, options.clinicWatchMs ?? 1_000).pipe(
          filter(() => router.getStatus().mode === "local" && session.current().signedIn),
          exhaustMap(() => clinicApplier.logPosition({ timeoutMs: 1_000 }).catch(() => null)),
          filter((position) => position !== null),
          distinctUntilChanged(),
        );
  const refreshing = merge(timer(0, options.cacheRefreshMs ?? 60_000), served$, clinicMoved$)
    .pipe(
      oneRunAtATime(async () => {
        if (router.getStatus().mode === "offline" || !session.current().signedIn) return;
        await offline
          .refresh(router.servers())
          .catch((error: unknown) => onError("refreshing the offline copy", asCv(error)));
      }),
    )
    .subscribe();

  return {
    router,
    offline,
    session,
    audit,
    async close() {
      delivering.unsubscribe();
      refreshing.unsubscribe();
      renewing.unsubscribe();
      draining.unsubscribe();
      gate.unsubscribe();
      await router.close();
      await Promise.all([cloudApplier.close(), clinic.applier?.close(), session.close()]);
    },
  };
}

/** The router's status as the outbox drain sees it: a server counts only while it may be used. */
function drainStatus(
  status$: Observable<ConnectionStatus>,
  usable$: Observable<UsableTiers>,
): Observable<ConnectionStatus> {
  return combineLatest([status$, usable$]).pipe(
    map(([status, usable]) => ({
      ...status,
      tiers: {
        ...status.tiers,
        cloud: { ...status.tiers.cloud, available: status.tiers.cloud.available && usable.cloud },
        clinic: { ...status.tiers.clinic, available: status.tiers.clinic.available && usable.clinic },
      },
    })),
  );
}
