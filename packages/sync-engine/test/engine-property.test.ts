import { randomUUID } from "node:crypto";
import { pick, seededRandom, testSeeds } from "@centrovision/testkit";
import { consultation, insert, insertConsultation, patient } from "@centrovision/testkit/nodes";
import type postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SyncEngine } from "../src/index.js";
import {
  checksums,
  createSyncPair,
  differingRows,
  duplicateLogEntries,
  explainRows,
  type SyncPair,
} from "./support/sync-pair.js";

let pair: SyncPair;
let engine: SyncEngine;
let branchId: string;
let roomId: string;

beforeAll(async () => {
  pair = await createSyncPair();
  engine = pair.engine({ pageSize: 7, timeoutMs: 2_000 });
  const base = consultation();
  branchId = base.branches.id;
  roomId = base.rooms.id;
  await insertConsultation(pair.cloud.sql, base);
  await engine.syncNow();
});

afterAll(() => pair.close());

type Side = "cloud" | "clinic";
const SIDES: readonly Side[] = ["cloud", "clinic"];
const NOTES = [
  "Control en 1 mes",
  "Usar gotas c/8h",
  "Referir a retina",
  "Sin cambios",
  "Cirugía programada",
];
const PHONES = ["55 1000 0001", "55 1000 0002", "33 2000 0003", "81 3000 0004"];

interface World {
  /** Patient ids and whether some side deleted them. */
  readonly patients: Map<string, { deleted: boolean }>;
  readonly doctor: string;
}

/** A write an app could make; a foreign-key or uniqueness refusal is what that app would see, and is ignored. */
async function randomWrite(
  random: () => number,
  sql: postgres.Sql,
  world: World,
  label: string,
): Promise<void> {
  const ids = [...world.patients.keys()];
  const target = ids.length > 0 ? pick(random, ids) : undefined;
  const roll = random();
  try {
    if (roll < 0.25 || target === undefined) {
      const row = patient(branchId, label);
      await insert(sql, "patients", row);
      world.patients.set(row.id, { deleted: false });
    } else if (roll < 0.45) {
      await sql`update patients set notes = ${pick(random, NOTES)} where id = ${target}`;
    } else if (roll < 0.6) {
      await sql`update patients set phone = ${pick(random, PHONES)} where id = ${target}`;
    } else if (roll < 0.68) {
      await sql`update patients set phone = ${pick(random, PHONES)}, notes = ${pick(random, NOTES)} where id = ${target}`;
    } else if (roll < 0.78) {
      const state = world.patients.get(target);
      await sql`delete from patients where id = ${target}`;
      if (state) state.deleted = true;
    } else if (roll < 0.9) {
      await sql.begin(async (tx) => {
        const appointment = randomUUID();
        await tx`insert into appointments ${tx({
          id: appointment,
          branch_id: branchId,
          room_id: roomId,
          patient_id: target,
          doctor_id: world.doctor,
          starts_at: "2025-05-05T09:00:00Z",
          ends_at: "2025-05-05T09:20:00Z",
          reason: label,
          type: "follow_up",
        })}`;
      });
    } else {
      const rows = consultation();
      await insertConsultation(sql, rows);
      world.patients.set(rows.patients.id, { deleted: false });
    }
  } catch (error) {
    if (!["23503", "23505", "23001"].includes((error as { code?: string }).code ?? "")) throw error;
  }
}

async function partition(random: () => number): Promise<void> {
  const roll = random();
  if (roll < 0.15) await pair.cloud.link.refuse();
  else if (roll < 0.2) await pair.cloud.link.blackhole();
  else await pair.cloud.link.pass();
}

async function syncUntilClean(): Promise<void> {
  let clean = 0;
  for (let attempt = 0; attempt < 10 && clean < 2; attempt++) {
    clean = (await engine.syncNow()).lastError === null ? clean + 1 : 0;
  }
  expect(clean).toBe(2);
}

describe("randomized interleavings of writes on both sides with random partitions", () => {
  it.each(testSeeds(8))("seed %i converges with nothing lost or duplicated", async (seed) => {
    const random = seededRandom(seed);
    const world: World = {
      patients: new Map(),
      doctor: (await pair.cloud.sql<{ id: string }[]>`select id from profiles limit 1`)[0]?.id as string,
    };
    for (let step = 0; step < 30; step++) {
      const roll = random();
      if (roll < 0.6) {
        await randomWrite(random, pair[pick(random, SIDES)].sql, world, `s${seed}-${step}`);
      } else if (roll < 0.8) {
        // Writes on both sides while a cycle is running.
        const cycle = engine.syncNow();
        for (let i = 0; i < 3; i++)
          await randomWrite(random, pair[pick(random, SIDES)].sql, world, `s${seed}-${step}.${i}`);
        await cycle;
      } else if (roll < 0.9) {
        await partition(random);
      } else {
        await engine.syncNow();
      }
    }
    await pair.cloud.link.pass();
    await syncUntilClean();
    const diff = await differingRows(pair.clinic.sql, pair.cloud.sql, "patients");
    if (diff.length > 0) {
      const explained = await explainRows(
        pair,
        diff.map((d) => d.id),
      );
      expect.fail(`seed ${seed}: patients differ\n${JSON.stringify(diff)}\n${explained}`);
    }
    expect(await checksums(pair.clinic.sql)).toEqual(await checksums(pair.cloud.sql));
    expect(await duplicateLogEntries(pair.clinic.sql)).toBe(0);
    expect(await duplicateLogEntries(pair.cloud.sql)).toBe(0);
    const kept = [...world.patients].filter(([, state]) => !state.deleted).map(([id]) => id);
    for (const side of SIDES) {
      const [found] = await pair[side].sql<
        { n: number }[]
      >`select count(*)::int as n from patients where id = any(${kept})`;
      expect(found?.n, `patients never deleted, on the ${side}`).toBe(kept.length);
    }
  });
});
