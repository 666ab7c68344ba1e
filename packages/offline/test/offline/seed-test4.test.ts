import { randomUUID } from "node:crypto";
import { createPostgresSource } from "@centrovision/adapter-postgres";
import { createSupabaseSource } from "@centrovision/adapter-supabase";
import { type ConnectionStatus, createFailoverRouter, type FailoverRouter } from "@centrovision/core";
import { createLink, type Link, type LocalSupabase } from "@centrovision/testkit";
import type { ClinicPerson, Consultation, SqlNode } from "@centrovision/testkit/nodes";
import { createClient, type WebSocketLikeConstructor } from "@supabase/supabase-js";
import type postgres from "postgres";
import { filter, firstValueFrom, type Subscription, timeout } from "rxjs";
import { afterAll, beforeAll, expect, it } from "vitest";
import WebSocket from "ws";
import { type ClientApplier, createClientApplier, type OfflineTier } from "../../src/index.js";
import { appUrl, frontDeskServers, openTier, type PcFiles, pcFiles } from "./support.js";

/*
 * The seed's "Test 4": no internet and the clinic server off. The PC keeps working on its SQLite
 * copy through the failover router (three real sources, each behind a fault link); writes queue;
 * when the links return the outbox drains to the cloud by itself, the router goes back to the
 * cloud, and the rows are in the cloud database (checked by direct SQL).
 */

let supabase: LocalSupabase;
let cloudDb: postgres.Sql;
let clinicNode: SqlNode;
let cloudLink: Link;
let clinicLink: Link;
let files: PcFiles;
let tier: OfflineTier;
let router: FailoverRouter;
let graph: Consultation;
/** The same receptionist at the clinic server: the profile and membership, as the sync brings them. */
let person: ClinicPerson;
const appliers: ClientApplier[] = [];
let draining: Subscription | undefined;

const until = (predicate: (status: ConnectionStatus) => boolean, ms = 30_000) =>
  firstValueFrom(router.status$.pipe(filter(predicate), timeout(ms)));

beforeAll(async () => {
  const servers = await frontDeskServers("offline_test4");
  ({ supabase, cloudDb, graph, clinicNode, person } = servers);
  const { userId } = servers;

  cloudLink = await createLink({ target: new URL(supabase.url).host });
  const clinicUrl = new URL(await appUrl(clinicNode));
  clinicLink = await createLink({ target: clinicUrl.host });
  const token = await supabase.mintUserToken(userId);
  const cloudUrl = cloudLink.url(supabase.url);

  const cloud = createSupabaseSource({
    id: "cloud",
    url: cloudUrl,
    key: supabase.anonKey,
    accessToken: token,
  });
  const clinic = createPostgresSource({
    id: "clinic",
    url: clinicLink.url(clinicUrl.href),
    connectTimeoutMs: 1_000,
    session: person.session,
  });
  files = await pcFiles();
  tier = await openTier(files, { branchId: graph.branches.id });
  router = createFailoverRouter({
    sources: [cloud, clinic, tier.source],
    hooks: { pendingChanges: (t) => tier.pendingChanges(t) },
    config: {
      probeIntervalMs: 200,
      suspectIntervalMs: 100,
      downIntervalMs: 300,
      probeTimeoutMs: 500,
      rise: 2,
      holdDownMs: 500,
      failbackCheckIntervalMs: 200,
      callTimeoutMs: 3_000,
    },
  });
  const client = createClient(cloudUrl, supabase.anonKey, {
    accessToken: async () => token,
    realtime: { transport: WebSocket as unknown as WebSocketLikeConstructor },
  });
  appliers.push(
    createClientApplier({ supabase: { client, url: cloudUrl, timeoutMs: 3_000 } }),
    createClientApplier({
      postgres: { url: clinicLink.url(clinicUrl.href), timeoutMs: 3_000, session: person.session },
    }),
  );
}, 120_000);

afterAll(async () => {
  draining?.unsubscribe();
  await router?.close();
  await Promise.all(appliers.map((a) => a.close()));
  await Promise.all([cloudLink?.close(), clinicLink?.close()]);
  await cloudDb?.end();
  await supabase?.stop();
  await clinicNode?.drop();
  await files?.remove();
});

it("works offline on SQLite and everything reaches the cloud once the links return", async () => {
  await until((s) => s.mode === "supabase" && s.tiers.cloud.available);
  const cached = await tier.refresh(router);
  expect(cached.rows.appointments).toBe(1);
  draining = tier.autoDrain(router.status$, { cloud: appliers[0], clinic: appliers[1] }, { intervalMs: 200 });

  // No internet, and the clinic server is off.
  await cloudLink.blackhole();
  await clinicLink.refuse();
  await until((s) => s.mode === "offline", 30_000);

  // Reception keeps working: today's agenda, an arrival, a walk-in patient with an appointment.
  const agenda = await router.table("appointments").list({ where: { branch_id: graph.branches.id } });
  expect(agenda.map((a) => a.id)).toEqual([graph.appointments.id]);
  await router.table("appointments").update(graph.appointments.id, { status: "checked_in" });
  const walkIn = await router.table("patients").insert({
    id: randomUUID(),
    branch_id: graph.branches.id,
    first_name: "Teresa",
    last_name: "Ortiz",
    birth_date: "1957-09-19",
    sex: "female",
    phone: "55 4321 8765",
  });
  const start = new Date(Date.now() + 5_400_000);
  const appointment = await router.table("appointments").insert({
    id: randomUUID(),
    branch_id: graph.branches.id,
    patient_id: walkIn.id,
    starts_at: start.toISOString(),
    ends_at: new Date(start.getTime() + 1_800_000).toISOString(),
    reason: "Ojo rojo",
    type: "emergency",
  });
  expect(await tier.pendingCount()).toBe(3);
  await until((s) => s.mode === "offline" && s.pendingChanges === 3);

  // The internet returns (the clinic server stays off a while longer): the outbox drains to the
  // cloud, then the router fails back.
  await cloudLink.pass();
  // The router leaves the device tier only once pendingChanges("device") is 0: the drain is done.
  await until((s) => s.mode === "supabase", 60_000);
  expect(await tier.pendingCount()).toBe(0);
  await until((s) => s.mode === "supabase" && s.pendingChanges === 0);
  expect(await tier.deadLetters()).toEqual([]);

  const rows = await cloudDb<{ id: string; version: string; status: string | null }[]>`
    select id, version, status::text from appointments where id in ${cloudDb([graph.appointments.id, appointment.id])}
    union all select id, version, null from patients where id = ${walkIn.id}`;
  const byId = new Map(rows.map((row) => [row.id, row]));
  expect(byId.get(graph.appointments.id)?.status).toBe("checked_in");
  expect(byId.get(appointment.id)?.version).toBe(appointment.version);
  expect(byId.get(walkIn.id)?.version).toBe(walkIn.version);
}, 180_000);

it("an offline edit against a concurrent cloud edit ends in the cloud's _conflicts with both versions", async () => {
  await until((s) => s.mode === "supabase" && s.pendingChanges === 0);
  await cloudLink.blackhole();
  await clinicLink.refuse();
  await until((s) => s.mode === "offline", 30_000);
  const offline = await router.table("patients").update(graph.patients.id, { phone: "55 1212 3434" });
  // Meanwhile, at another branch's PC still online, someone changed the same phone in the cloud.
  await cloudDb`update patients set phone = '55 5656 7878' where id = ${graph.patients.id}`;
  const [cloudEdit] = await cloudDb<
    { version: string }[]
  >`select version from patients where id = ${graph.patients.id}`;

  await cloudLink.pass();
  await until((s) => s.mode === "supabase" && s.pendingChanges === 0, 60_000);
  await clinicLink.pass();
  const conflicts = await cloudDb<{ local_version: string; remote_version: string; status: string }[]>`
    select local_version, remote_version, status from cv_sync.conflicts where row_id = ${graph.patients.id}`;
  expect(conflicts).toHaveLength(1);
  expect([conflicts[0]?.local_version, conflicts[0]?.remote_version].sort()).toEqual(
    [offline.version, cloudEdit?.version].sort(),
  );
  expect(await tier.deadLetters()).toEqual([]);
}, 180_000);
