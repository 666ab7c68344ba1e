import { randomBytes, randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createPostgresSource } from "@centrovision/adapter-postgres";
import { createSqliteSource } from "@centrovision/adapter-sqlite";
import type { DataSource, TableName } from "@centrovision/core";
import { startLocalSupabase } from "@centrovision/testkit";
import {
  type Consultation,
  clinicPerson,
  consultation,
  createNode,
  ensureLogin,
  insertConsultation,
  type SqlNode,
  sharedServer,
  withLogin,
} from "@centrovision/testkit/nodes";
import postgres from "postgres";
import { afterAll, afterEach, beforeAll, beforeEach } from "vitest";
import { createClientApplier, createOfflineTier, type OfflineTier } from "../../src/index.js";
import type { OfflineScope } from "../../src/offline/offline-options.js";

const APP = { user: "cv_offline_test", password: "offline-test-password" };

/** A login in centrovision_app (what a PC holds) on `node`'s database. */
export async function appUrl(node: SqlNode): Promise<string> {
  return withLogin(node.url, await ensureLogin(APP, "centrovision_app"));
}

/**
 * A clinic server database reached as a PC with a receptionist signed in (a clinic session): a
 * source for refreshes and an applier for drains. The person works at no branch until a test
 * admits them to the branches it writes (`person.admit`).
 */
export async function clinicServer(name: string) {
  const node = await createNode(name);
  const url = await appUrl(node);
  const person = await clinicPerson(node);
  const source = createPostgresSource({ id: "clinic", url, callTimeoutMs: 30_000, session: person.session });
  const applier = createClientApplier({ postgres: { url, session: person.session } });
  return {
    node,
    /** The PC's login URL (centrovision_app; acts as `person` with its session). */
    url,
    person,
    source,
    applier,
    async close() {
      await applier.close();
      await source.close();
      await node.drop();
    },
  };
}

export type ClinicServer = Awaited<ReturnType<typeof clinicServer>>;

/** A clinic server for the calling file: set up before its tests, dropped after them. */
export function useClinicServer(name: string): ClinicServer {
  const clinic = {} as ClinicServer;
  beforeAll(async () => {
    Object.assign(clinic, await clinicServer(name));
  }, 60_000);
  afterAll(() => clinic.close?.());
  return clinic;
}

/** A folder and key for one PC's local file. */
export async function pcFiles() {
  const dir = await mkdtemp(join(tmpdir(), "cv-offline-"));
  return {
    dir,
    path: join(dir, "pc.cvdb"),
    key: randomBytes(32),
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}

export type PcFiles = Awaited<ReturnType<typeof pcFiles>>;

export async function openTier(
  files: PcFiles,
  scope: OfflineScope,
  extra: { now?: () => Date; overlapMs?: number; drainBatchSize?: number } = {},
): Promise<OfflineTier> {
  const store = await createSqliteSource({ path: files.path, key: files.key });
  return createOfflineTier({ store, scope, ...extra });
}

/** A consultation happening today (in the PC's scope), with fresh ids. */
export function todayClinic(now = new Date()): Consultation {
  const graph = consultation();
  const start = new Date(now.getTime() + 3_600_000);
  return {
    ...graph,
    appointments: {
      ...graph.appointments,
      starts_at: start.toISOString(),
      ends_at: new Date(start.getTime() + 1_800_000).toISOString(),
    },
    encounters: { ...graph.encounters, started_at: start.toISOString() },
    diagnoses: { ...graph.diagnoses, diagnosed_at: start.toISOString() },
  };
}

/**
 * Both servers a front desk works against: a local Supabase and a clinic server database
 * (`clinicName`) holding the same consultation today, and a receptionist of its branch on both
 * (`userId`: the cloud's profile and membership; `person` at the clinic server, as the sync brings
 * them). Stop `supabase`, end `cloudDb` and drop `clinicNode` after.
 */
export async function frontDeskServers(clinicName: string) {
  const userId = randomUUID();
  const supabase = await startLocalSupabase({ postgres: sharedServer(), log: () => {} });
  const cloudDb = postgres(supabase.dbUrl, { max: 2, onnotice: () => {} });
  const graph = todayClinic();
  await insertConsultation(cloudDb, graph);
  await cloudDb`insert into profiles (id, full_name) values (${userId}, 'Recepción Roma')`;
  await cloudDb`insert into user_branches (id, user_id, branch_id) values (${randomUUID()}, ${userId}, ${graph.branches.id})`;
  const clinicNode = await createNode(clinicName);
  await insertConsultation(clinicNode.sql, graph);
  const person = await clinicPerson(clinicNode, {
    userId,
    fullName: "Recepción Roma",
    branches: [graph.branches.id],
  });
  return { userId, supabase, cloudDb, graph, clinicNode, person };
}

/**
 * For each test of the calling file: a consultation today on `server` (its person admitted to the
 * branch), and a fresh PC copy of that branch, refreshed once. Read `graph` and `tier` in tests.
 */
export function useTodayCopy(server: ClinicServer): {
  readonly graph: Consultation;
  readonly tier: OfflineTier;
  readonly files: PcFiles;
} {
  const state = {} as { graph: Consultation; tier: OfflineTier; files: PcFiles };
  beforeEach(async () => {
    state.graph = todayClinic();
    await insertConsultation(server.node.sql, state.graph);
    await server.person.admit(state.graph.branches.id);
    state.files = await pcFiles();
    state.tier = await openTier(state.files, { branchId: state.graph.branches.id });
    await state.tier.refresh(server.source);
  });
  afterEach(async () => {
    await state.tier.close().catch(() => {});
    await state.files.remove();
  });
  return state;
}

/** A gate: `wait()` marks it `started` and holds until `release()`. */
export function gate() {
  let release = () => {};
  const open = new Promise<void>((resolve) => {
    release = resolve;
  });
  let enter = () => {};
  const started = new Promise<void>((resolve) => {
    enter = resolve;
  });
  return {
    release,
    started,
    wait: async () => {
      enter();
      await open;
    },
  };
}

/** `source`, its `method` of `table` held at a gate until `release()`: a slow server. */
export function slowed(source: DataSource, table: TableName, method: "list" | "get") {
  const held = gate();
  const slow: DataSource = {
    ...source,
    table: ((name: TableName) => {
      const repository = source.table(name);
      if (name !== table) return repository;
      const call = repository[method] as (...args: unknown[]) => Promise<unknown>;
      return {
        ...repository,
        [method]: async (...args: unknown[]) => {
          await held.wait();
          return call(...args);
        },
      };
    }) as DataSource["table"],
  };
  return { source: slow, release: held.release, started: held.started };
}
