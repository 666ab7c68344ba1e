/**
 * What the adapter costs over the raw `postgres` driver: the same statement on the same data and
 * the same server, once through `createPostgresSource` (validation, Kysely, deadline, canonical
 * rows) and once as the driver's own prepared tagged-template query. Target: adapter ≤ 1.2× raw.
 *
 * The two run interleaved, one call each in turn (alternating who goes first), and medians are
 * compared: on a shared machine the load drifts, and timing one side for seconds and then the
 * other turns that drift into a fake ratio. Two alternatives the adapter does not use are timed
 * the same way, as the measurement behind those choices.
 *
 *   npm run bench -w @centrovision/adapter-postgres        CV_BENCH_ROUNDS=5000 for more samples
 */
import { canonicalTimestamp, tables } from "@centrovision/core";
import { applyMigrations, startPostgres } from "@centrovision/testkit";
import { createFixtures } from "@centrovision/testkit/contract";
import { Kysely } from "kysely";
import { PostgresJSDialect } from "kysely-postgres-js";
import postgres from "postgres";
import { createPostgresSource } from "../src/index.js";
import { compare, report } from "./interleave.js";

const ROUNDS = Number(process.env.CV_BENCH_ROUNDS ?? 4_000);
const TARGET = 1.2;
const fixtures = createFixtures();
const columns = tables.patients.columns;

const server = await startPostgres();
try {
  const url = await server.createDatabase("bench");
  await applyMigrations(url);
  // Same pool size both ways and no link in between: this measures code, not a network.
  const raw = postgres(url, { max: 5, onnotice: () => {} });
  const source = createPostgresSource({ url, max: 5 });
  const stock = postgres(url, { max: 5, onnotice: () => {} });
  const stockKysely = new Kysely<Record<string, Record<string, unknown>>>({
    dialect: new PostgresJSDialect({ postgres: stock }),
  });

  const branch = await source.table("branches").insert(fixtures.branch());
  const rows = Array.from({ length: 1_000 }, (_, i) =>
    fixtures.patient(branch.id, { last_name: `Apellido ${String(i).padStart(4, "0")}`, document_id: null }),
  );
  await source.table("patients").upsertMany(rows, { timeoutMs: 60_000 });
  let next = 0;
  const nextId = () => (rows[next++ % rows.length] as { id: string }).id;
  // The same columns both ways: what a reception PC sends when it saves a patient's card.
  const card = () => ({
    id: nextId(),
    branch_id: branch.id,
    first_name: "Ana Sofía",
    last_name: "Muñoz",
    birth_date: "1961-07-02",
    sex: "female" as const,
    phone: `+52 55 ${String(1_000 + (next % 9_000))} 0000`,
  });
  const page = { orderBy: [{ column: "last_name" as const }], limit: 100 };

  console.log(
    `adapter vs raw postgres, median of ${ROUNDS} interleaved calls each (${new Date().toISOString()})\n`,
  );
  const get = await compare(
    () => source.table("patients").get(nextId()),
    () => raw`select ${raw(columns)} from patients where id = ${nextId()}`,
    ROUNDS,
  );
  report("get: one patient by id", "raw postgres", get, TARGET);
  const list = await compare(
    () => source.table("patients").list(page),
    () => raw`select ${raw(columns)} from patients order by last_name collate "C", id limit 100`,
    ROUNDS,
  );
  report("list: 100 patients by surname", "raw postgres", list, TARGET);
  const upsert = await compare(
    () => source.table("patients").upsert(card()),
    () => raw`
      insert into patients ${raw(card())}
      on conflict (id) do update set branch_id = excluded.branch_id, first_name = excluded.first_name,
        last_name = excluded.last_name, birth_date = excluded.birth_date, sex = excluded.sex, phone = excluded.phone
      returning ${raw(columns)}`,
    ROUNDS,
  );
  report("upsert: overwrite a patient's card", "raw postgres", upsert, TARGET);

  console.log("\nalternatives not taken, vs the same raw query");
  report(
    "get via stock kysely-postgres-js (unprepared)",
    "raw postgres",
    await compare(
      () => stockKysely.selectFrom("patients").select(columns).where("id", "=", nextId()).execute(),
      () => raw`select ${raw(columns)} from patients where id = ${nextId()}`,
      ROUNDS,
    ),
  );
  // Canonical rows from to_jsonb instead of type parsers: numbers and dates come right, but
  // timestamps still need rewriting and every row carries its column names.
  const timestamps = columns.filter((column) => tables.patients.columnTypes[column] === "timestamptz");
  report(
    "list via to_jsonb + timestamp rewrite",
    "raw postgres",
    await compare(
      async () => {
        const found = await raw<{ row: Record<string, unknown> }[]>`
          select to_jsonb(t) as row from (
            select ${raw(columns)} from patients order by last_name collate "C", id limit 100) t`;
        for (const { row } of found)
          for (const column of timestamps) row[column] = canonicalTimestamp(String(row[column]));
        return found;
      },
      () => raw`select ${raw(columns)} from patients order by last_name collate "C", id limit 100`,
      ROUNDS,
    ),
  );
  await Promise.all([source.close(), raw.end(), stockKysely.destroy()]);
} finally {
  await server.stop();
}
