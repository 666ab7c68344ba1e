/**
 * Durable write latency of the SQLite tier with a ~50 MB database, against the physical limit
 * measured in the same run on the same disk: appending a similar record and fdatasync'ing it.
 * Also what a snapshot of the whole database costs (writes wait meanwhile) and opening it.
 *
 *   npm run bench -w @centrovision/adapter-sqlite        CV_BENCH_DIR=/path picks the disk
 */
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtemp, open, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { reportFigure } from "@centrovision/testkit";
import { createFixtures } from "@centrovision/testkit/contract";
import { createSqliteSource, type SqliteSource } from "../src/index.js";

const TARGET_BYTES = 50 * 1024 * 1024;
const SAMPLES = 500;
const fixtures = createFixtures();

const percentile = (values: readonly number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
};
const ms = (value: number) => `${value.toFixed(2)} ms`;
const since = (started: number) => performance.now() - started;

/** Patients with an appointment each, 2,000 per transaction, until the snapshot file reaches 50 MB. */
async function seed(source: SqliteSource, path: string) {
  const branch = await source.table("branches").insert(fixtures.branch());
  const room = await source.table("rooms").insert(fixtures.room(branch.id));
  const doctor = await source.table("profiles").insert(fixtures.profile());
  let patients = 0;
  let patientId = "";
  while ((await stat(path)).size < TARGET_BYTES) {
    const batch = Array.from({ length: 2_000 }, (_, i) =>
      fixtures.patient(branch.id, {
        document_id: `CURP${randomUUID().slice(0, 13).toUpperCase()}`,
        first_name: `Paciente ${patients + i}`,
        address: "Calle Benito Juárez 123, Col. Centro, Ciudad de México",
        allergies: i % 5 === 0 ? "Penicilina" : null,
      }),
    );
    await source.table("patients").upsertMany(batch, { timeoutMs: 120_000 });
    const visits = batch.map((p) =>
      fixtures.appointment({ branchId: branch.id, patientId: p.id, roomId: room.id, doctorId: doctor.id }),
    );
    await source.table("appointments").upsertMany(visits, { timeoutMs: 120_000 });
    patients += batch.length;
    patientId = batch[0]?.id ?? patientId;
    // The file only grows at snapshots; take one now and then to know when 50 MB is reached.
    if (patients % 10_000 === 0) await source.snapshot({ timeoutMs: 120_000 });
  }
  return { patients, ids: { branchId: branch.id, patientId, roomId: room.id, doctorId: doctor.id } };
}

/** One append of `bytes` plus fdatasync per sample: the least any durable write can cost here. */
async function rawFsync(dir: string, bytes: number): Promise<number[]> {
  const handle = await open(join(dir, "fsync-probe"), "w");
  const samples: number[] = [];
  try {
    for (let i = 0, offset = 0; i < SAMPLES; i++, offset += bytes) {
      const chunk = randomBytes(bytes);
      const started = performance.now();
      await handle.write(chunk, 0, bytes, offset);
      await handle.datasync();
      samples.push(since(started));
    }
  } finally {
    await handle.close();
  }
  return samples;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(process.env.CV_BENCH_DIR ?? tmpdir(), "cv-sqlite-bench-"));
  const path = join(dir, "clinic.cvdb");
  const key = randomBytes(32);
  try {
    let source = await createSqliteSource({ path, key });
    let started = performance.now();
    const { patients, ids } = await seed(source, path);
    const seedSeconds = since(started) / 1000;

    started = performance.now();
    await source.snapshot({ timeoutMs: 120_000 });
    const snapshotMs = since(started);
    const size = (await stat(path)).size;
    await source.close();
    started = performance.now();
    source = await createSqliteSource({ path, key });
    const openMs = since(started);

    const writes: number[] = [];
    for (let i = 0; i < SAMPLES + 10; i++) {
      const row = fixtures.appointment(ids);
      const begun = performance.now();
      await source.table("appointments").insert(row);
      if (i >= 10) writes.push(since(begun));
    }
    const journalBytes = (await stat(`${path}-journal`)).size;
    const recordBytes = Math.round(journalBytes / (SAMPLES + 10));
    const fsyncs = await rawFsync(dir, recordBytes);
    await source.close();

    console.log(
      `SQLite durable write: ${(size / 2 ** 20).toFixed(1)} MiB encrypted database ` +
        `(${patients} patients + ${patients} appointments, seeded in ${seedSeconds.toFixed(1)} s), ${SAMPLES} samples`,
    );
    for (const p of [50, 95]) {
      reportFigure({
        figure: `durable insert of 1 appointment, p${p}`,
        unit: "ms",
        measured: percentile(writes, p),
        reference: { label: `raw ${recordBytes}-byte append + fdatasync`, value: percentile(fsyncs, p) },
        ratio: percentile(writes, p) / percentile(fsyncs, p),
      });
    }
    console.log(`${"snapshot of the whole database".padEnd(48)} ${ms(snapshotMs)} (writes queue meanwhile)`);
    console.log(`${"open (decrypt + load the snapshot)".padEnd(48)} ${ms(openMs)}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
