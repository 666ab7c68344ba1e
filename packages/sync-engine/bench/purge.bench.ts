/**
 * The change log stays bounded: CV_BENCH_PURGE_CHANGES changes (default 20,000, and 100,000 with
 * CV_BENCH_LONG=1) written on the clinic server in rounds of 5,000, each round synced to the other
 * node by the engine, which purges both logs after every cycle (retention 0 here; a clinic runs 30
 * days). Prints both logs' size after each round, against the same run without purging: flat
 * versus growing.
 *
 *   node --conditions=@centrovision/source --import tsx bench/purge.bench.ts
 */
import { randomUUID } from "node:crypto";
import { createNodeDatabase, longOrShort, reportFigure, startPostgres } from "@centrovision/testkit";
import type postgres from "postgres";
import { createPostgresPeer, createSyncEngine } from "../src/index.js";

const CHANGES = Number(
  process.env.CV_BENCH_PURGE_CHANGES ??
    longOrShort(100_000, 20_000, "purge.bench.ts: 20,000 changes written instead of 100,000"),
);
const ROUND = 5_000;

const log = (line: string) => process.stdout.write(`${line}\n`);

const server = await startPostgres();
try {
  const branchId = randomUUID();
  const node = (name: string) => createNodeDatabase(server, name, branchId);
  const logSize = async (sql: postgres.Sql) =>
    (await sql<{ n: number }[]>`select count(*)::int as n from cv_sync.change_log`)[0]?.n ?? 0;

  /** Writes CHANGES in rounds, a cycle after each; returns both logs' size after every round. */
  async function soak(purge: boolean) {
    const [clinic, cloud] = await Promise.all([node(`purge_clinic_${purge}`), node(`purge_cloud_${purge}`)]);
    const engine = createSyncEngine({
      local: createPostgresPeer({ url: clinic.url, timeoutMs: 120_000 }),
      remote: createPostgresPeer({ url: cloud.url, timeoutMs: 120_000 }),
      intervalMs: 3_600_000,
      pageSize: 5_000,
      purgeIntervalMs: purge ? 1 : 0,
      purgeRetention: "0 seconds",
    });
    // The branch row itself, both ways, before the rounds.
    await engine.syncNow();
    const sizes: { clinic: number; cloud: number }[] = [];
    let ids: string[] = [];
    const started = performance.now();
    for (let written = 0; written < CHANGES; written += ROUND) {
      // New patients, then half of them edited: inserts and updates, as a clinic's day has them.
      const fresh = Array.from({ length: ROUND / 2 }, (_, i) => ({
        id: randomUUID(),
        branch_id: branchId,
        first_name: `Paciente ${written + i}`,
        last_name: "Purga",
        birth_date: "1970-01-01",
        sex: "unknown",
        phone: "55 0000 0000",
      }));
      await clinic.sql`insert into patients ${clinic.sql(fresh)}`;
      ids = fresh.map((p) => p.id);
      await clinic.sql`update patients set phone = '55 1111 1111' where id in ${clinic.sql(ids)}`;
      const status = await engine.syncNow();
      if (status.lastError !== null) throw new Error(`cycle failed: ${status.lastError.message}`);
      // A second cycle acknowledges what the first applied: what a 30 s interval does by itself.
      await engine.syncNow();
      sizes.push({ clinic: await logSize(clinic.sql), cloud: await logSize(cloud.sql) });
    }
    const elapsed = performance.now() - started;
    await engine.stop();
    await Promise.all([clinic.sql.end(), cloud.sql.end()]);
    return { sizes, elapsed };
  }

  log(
    `change log size over ${CHANGES.toLocaleString("en")} changes (${ROUND.toLocaleString("en")} per round, a cycle after each):`,
  );
  const kept = await soak(false);
  const purged = await soak(true);
  log(
    "| changes written | clinic log, no purge | clinic log, purged | cloud log, no purge | cloud log, purged |",
  );
  log("|---:|---:|---:|---:|---:|");
  for (const [round, without] of kept.sizes.entries()) {
    const withPurge = purged.sizes[round];
    if (round % 4 !== 3 && round !== kept.sizes.length - 1) continue;
    log(
      `| ${((round + 1) * ROUND).toLocaleString("en")} | ${without.clinic.toLocaleString("en")} | ${withPurge?.clinic.toLocaleString("en")} | ${without.cloud.toLocaleString("en")} | ${withPurge?.cloud.toLocaleString("en")} |`,
    );
  }
  const peak = Math.max(...purged.sizes.map((s) => Math.max(s.clinic, s.cloud)));
  const last = kept.sizes.at(-1);
  // Flat: at most one round's changes and the setup's (the branch row, in the first round only),
  // whatever the number of rounds.
  reportFigure({
    figure: `largest purged change log over ${CHANGES.toLocaleString("en")} changes`,
    unit: "entries",
    measured: peak,
    reference: { label: "clinic log at the end without purging", value: last?.clinic ?? Number.NaN },
    goal: { of: "measured", atMost: ROUND + 2 },
  });
  reportFigure({
    figure: "time of all rounds, purging after every cycle",
    unit: "s",
    measured: purged.elapsed / 1000,
    reference: { label: "without purging", value: kept.elapsed / 1000 },
    ratio: purged.elapsed / kept.elapsed,
  });
} finally {
  await server.stop();
}
