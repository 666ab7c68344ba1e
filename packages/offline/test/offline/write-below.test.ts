import { randomUUID } from "node:crypto";
import { createPostgresSource } from "@centrovision/adapter-postgres";
import { createSupabaseSource } from "@centrovision/adapter-supabase";
import { type ConnectionStatus, createFailoverRouter, type FailoverRouter } from "@centrovision/core";
import { createLink, type Link, type LocalSupabase } from "@centrovision/testkit";
import type { Consultation, SqlNode } from "@centrovision/testkit/nodes";
import { createClient, type WebSocketLikeConstructor } from "@supabase/supabase-js";
import type postgres from "postgres";
import { filter, firstValueFrom, type Subscription, timeout } from "rxjs";
import { afterAll, afterEach, beforeAll, expect, it } from "vitest";
import WebSocket from "ws";
import {
  type ClientApplier,
  createClientApplier,
  createPcRouterHooks,
  type OfflineTier,
} from "../../src/index.js";
import { appUrl, frontDeskServers, openTier, type PcFiles, pcFiles } from "./support.js";

/*
 * Writes a tier below the cloud took while the cloud lacks them: one call to the cloud failed (a
 * connection refused for a moment) while the router stays on the cloud, so the write went to the
 * next tier that answers; or the clinic server took it in an outage and stopped too before its sync
 * sent it up, and the internet came back first. Every piece is real: a local Supabase, a
 * clinic server database, this PC's encrypted file with its outbox, each reached through a fault
 * link; the cloud's applier through a link of its own, so a test can hold the lift back. No sync
 * engine runs: only the router's lift can bring the write up.
 */

let supabase: LocalSupabase;
let cloudDb: postgres.Sql;
let clinicNode: SqlNode;
/** The router's way to the cloud, its way to the clinic server, and the cloud applier's. */
let cloudLink: Link;
let clinicLink: Link;
let applierLink: Link;
let files: PcFiles;
let tier: OfflineTier;
let router: FailoverRouter;
let graph: Consultation;
let cloudApplier: ClientApplier;
let clinicApplier: ClientApplier;
let draining: Subscription | undefined;

const until = (predicate: (status: ConnectionStatus) => boolean, ms = 30_000) =>
  firstValueFrom(router.status$.pipe(filter(predicate), timeout(ms)));

beforeAll(async () => {
  const servers = await frontDeskServers("offline_write_below");
  ({ supabase, cloudDb, graph, clinicNode } = servers);
  const { userId, person } = servers;

  [cloudLink, applierLink] = await Promise.all([
    createLink({ target: new URL(supabase.url).host }),
    createLink({ target: new URL(supabase.url).host }),
  ]);
  const clinicUrl = new URL(await appUrl(clinicNode));
  clinicLink = await createLink({ target: clinicUrl.host });
  const token = await supabase.mintUserToken(userId);
  const client = createClient(applierLink.url(supabase.url), supabase.anonKey, {
    accessToken: async () => token,
    realtime: { transport: WebSocket as unknown as WebSocketLikeConstructor },
  });
  cloudApplier = createClientApplier({
    supabase: { client, url: applierLink.url(supabase.url), timeoutMs: 2_000 },
  });
  clinicApplier = createClientApplier({
    postgres: { url: clinicLink.url(clinicUrl.href), timeoutMs: 2_000, session: person.session },
  });
  files = await pcFiles();
  tier = await openTier(files, { branchId: graph.branches.id });
  router = createFailoverRouter({
    sources: [
      createSupabaseSource({
        id: "cloud",
        url: cloudLink.url(supabase.url),
        key: supabase.anonKey,
        accessToken: token,
      }),
      createPostgresSource({
        id: "clinic",
        url: clinicLink.url(clinicUrl.href),
        connectTimeoutMs: 1_000,
        session: person.session,
      }),
      tier.source,
    ],
    hooks: createPcRouterHooks({
      cloud: cloudApplier,
      clinic: clinicApplier,
      device: tier,
      localPending: () => tier.pendingCount(),
      timeoutMs: 2_000,
    }),
    // Three failures before a tier is down, a probe a second after a failure: the one refused
    // call, and at most one probe in the same moment, leave the router on the cloud.
    config: {
      fall: 3,
      rise: 2,
      holdDownMs: 500,
      probeIntervalMs: 1_000,
      suspectIntervalMs: 1_000,
      downIntervalMs: 300,
      probeTimeoutMs: 500,
    },
  });
  await until((s) => s.mode === "supabase" && s.tiers.cloud.available);
  await tier.refresh(router);
}, 120_000);

afterEach(async () => {
  draining?.unsubscribe();
  draining = undefined;
  await Promise.all([cloudLink.pass(), clinicLink.pass(), applierLink.pass()]);
});

afterAll(async () => {
  await router?.close();
  await Promise.all([cloudApplier?.close(), clinicApplier?.close()]);
  await Promise.all([cloudLink?.close(), clinicLink?.close(), applierLink?.close()]);
  await cloudDb?.end();
  await supabase?.stop();
  await clinicNode?.drop();
  await files?.remove();
});

/** Books an appointment while the router's way to the cloud refuses that one call. */
async function bookWhileTheCloudRefuses(reason: string) {
  // A cloud that failed nothing since its last probe: this call's failure alone leaves it serving.
  await until((s) => s.mode === "supabase" && s.tiers.cloud.consecutiveFailures === 0);
  await cloudLink.refuse();
  const booked = await appointment(reason);
  await cloudLink.pass();
  expect(router.getStatus().mode).toBe("supabase");
  return booked;
}

async function appointment(reason: string) {
  const start = new Date(Date.now() + 7_200_000);
  return router.table("appointments").insert({
    id: randomUUID(),
    branch_id: graph.branches.id,
    patient_id: graph.patients.id,
    starts_at: start.toISOString(),
    ends_at: new Date(start.getTime() + 1_800_000).toISOString(),
    reason,
    type: "follow_up",
  });
}

async function onCloud(id: string): Promise<string | undefined> {
  const [row] = await cloudDb<{ version: string }[]>`select version from appointments where id = ${id}`;
  return row?.version;
}

it("taken by this PC's file: the next read on the cloud already shows it", async () => {
  await clinicLink.refuse();
  await until((s) => s.mode === "supabase" && !s.tiers.clinic.available);
  const booked = await bookWhileTheCloudRefuses("taken by the PC's file");
  expect((await router.table("appointments").get(booked.id))?.version).toBe(booked.version);
  expect(await onCloud(booked.id)).toBe(booked.version);
  expect(await tier.pendingCount()).toBe(0);
}, 60_000);

it("while it cannot reach the cloud yet, the icon says cloud with 1 pending, then 0 once drained", async () => {
  await clinicLink.refuse();
  await applierLink.blackhole();
  await until((s) => s.mode === "supabase" && !s.tiers.clinic.available && s.pendingChanges === 0);
  const booked = await bookWhileTheCloudRefuses("waiting in the outbox");
  await until((s) => s.mode === "supabase" && s.pendingChanges === 1, 5_000);
  expect(await onCloud(booked.id)).toBeUndefined();
  await applierLink.pass();
  draining = tier.autoDrain(router.status$, { cloud: cloudApplier }, { intervalMs: 200 });
  await until((s) => s.mode === "supabase" && s.pendingChanges === 0, 20_000);
  expect(await onCloud(booked.id)).toBe(booked.version);
}, 60_000);

it("taken by the clinic server: carried to the cloud before the next read there", async () => {
  await until((s) => s.mode === "supabase" && s.tiers.clinic.available);
  const booked = await bookWhileTheCloudRefuses("taken by the clinic server");
  const [onClinic] = await clinicNode.sql<{ version: string }[]>`
    select version from appointments where id = ${booked.id}`;
  expect(onClinic?.version).toBe(booked.version);
  expect((await router.table("appointments").get(booked.id))?.version).toBe(booked.version);
  expect(await onCloud(booked.id)).toBe(booked.version);
  expect(await tier.pendingCount()).toBe(0);
}, 60_000);

it("taken by the clinic server while the cloud's applier cannot reach the cloud: counted, read from the clinic server, and lifted once it can", async () => {
  await until((s) => s.mode === "supabase" && s.tiers.clinic.available);
  await applierLink.refuse();
  const booked = await bookWhileTheCloudRefuses("lifted on a later try");
  await until((s) => s.mode === "supabase" && s.pendingChanges === 1, 5_000);
  expect((await router.table("appointments").get(booked.id))?.version).toBe(booked.version);
  expect(await onCloud(booked.id)).toBeUndefined();
  await applierLink.pass();
  await until((s) => s.mode === "supabase" && s.pendingChanges === 0, 10_000);
  expect(await onCloud(booked.id)).toBe(booked.version);
}, 60_000);

it("a deletion the clinic server took, made with the version it deletes: carried to the cloud before the next read there", async () => {
  await until((s) => s.mode === "supabase" && s.tiers.clinic.available);
  const booked = await bookWhileTheCloudRefuses("booked, then deleted on the clinic server");
  expect((await router.table("appointments").get(booked.id))?.version).toBe(booked.version);
  expect(await onCloud(booked.id)).toBe(booked.version);
  await until((s) => s.mode === "supabase" && s.tiers.cloud.consecutiveFailures === 0);
  await cloudLink.refuse();
  expect(await router.table("appointments").delete(booked.id, { expectedVersion: booked.version })).toBe(
    true,
  );
  await cloudLink.pass();
  expect(router.getStatus().mode).toBe("supabase");
  const [onClinic] = await clinicNode.sql`select 1 from appointments where id = ${booked.id}`;
  expect(onClinic).toBeUndefined();
  expect(await router.table("appointments").get(booked.id)).toBeNull();
  expect(await onCloud(booked.id)).toBeUndefined();
}, 60_000);

it("taken by the clinic server while the cloud's applier is slow (0.8 s each way): reads go to the clinic server until the lift lands", async () => {
  await until((s) => s.mode === "supabase" && s.tiers.clinic.available);
  await applierLink.latency(800);
  const booked = await bookWhileTheCloudRefuses("a slow lift");
  expect((await router.table("appointments").get(booked.id))?.version).toBe(booked.version);
  await until((s) => s.mode === "supabase");
  await applierLink.latency(0);
}, 60_000);

it("two writes this PC's file took in a row, the second while the first one's drain runs: both reach the cloud", async () => {
  await clinicLink.refuse();
  await until((s) => s.mode === "supabase" && !s.tiers.clinic.available);
  // The first write's lift drains the outbox for over a second; the second write falls to the file
  // meanwhile, after that drain read the outbox.
  await applierLink.latency(600);
  const first = await bookWhileTheCloudRefuses("first, by the PC's file");
  const second = await bookWhileTheCloudRefuses("second, by the PC's file");
  expect(tier.syncState().isSyncing).toBe(true);
  while (tier.syncState().isSyncing) await new Promise((resolve) => setTimeout(resolve, 50));
  await applierLink.latency(0);
  expect(await onCloud(first.id)).toBe(first.version);
  expect((await router.table("appointments").get(second.id))?.version).toBe(second.version);
  expect(await tier.pendingCount()).toBe(0);
}, 90_000);

it("taken by the clinic server, which stopped before its sync sent it: carried to the cloud at the failback", async () => {
  await until((s) => s.mode === "supabase" && s.tiers.clinic.available);
  await cloudLink.blackhole();
  await until((s) => s.mode === "local");
  const booked = await appointment("on the clinic server, then both gone");
  await clinicLink.refuse();
  await until((s) => s.mode === "offline");
  await cloudLink.pass();
  await until((s) => s.mode === "supabase");
  expect((await router.table("appointments").get(booked.id))?.version).toBe(booked.version);
  expect(await onCloud(booked.id)).toBe(booked.version);
}, 60_000);
