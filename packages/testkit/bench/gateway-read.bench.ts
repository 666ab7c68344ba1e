/**
 * Reads 100,000 rows in pages of 1,000 through supabase-js and the local
 * gateway, and the same rows with `postgres` directly (same pages, then one
 * query), and reports the gateway's rows/s with its ratio to each direct
 * read measured in this run.
 *
 * Run: `npm run bench` in packages/testkit
 * (`npm run bench`).
 */
import { fileURLToPath } from "node:url";
import { createClient } from "@supabase/supabase-js";
import postgres from "postgres";
import WebSocket from "ws";
import { reportFigure, startLocalSupabase } from "../src/index.js";

const ROWS = 100_000;
const PAGE = 1_000;
const RUNS = 3;
const EMPTY_MIGRATIONS = fileURLToPath(new URL("../test/fixtures/supabase/", import.meta.url));

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

async function measure(label: string, read: () => Promise<number>): Promise<number> {
  await read(); // warm-up: connections, prepared statements, JIT of the client code
  const rates: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    const started = process.hrtime.bigint();
    const rows = await read();
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    if (rows !== ROWS) throw new Error(`${label}: read ${rows} rows, expected ${ROWS}`);
    rates.push(rows / seconds);
  }
  const rate = median(rates);
  console.log(`  ${label.padEnd(34)} ${Math.round(rate).toLocaleString("en-US").padStart(10)} rows/s`);
  return rate;
}

const stack = await startLocalSupabase({ migrationsDir: EMPTY_MIGRATIONS, log: () => {} });
const sql = postgres(stack.dbUrl, { max: 1, onnotice: () => {} });
try {
  await sql`
    create table bench_rows (
      id int primary key, name text not null, amount numeric(10, 2), seen_at timestamptz, tags jsonb)`;
  await sql`
    insert into bench_rows
    select g, 'patient ' || g, g / 100.0, '2024-01-01'::timestamptz + g * interval '1 minute',
           jsonb_build_object('eye', case when g % 2 = 0 then 'OD' else 'OS' end, 'iop', g % 30)
    from generate_series(1, ${ROWS}) g`;
  await sql`analyze bench_rows`;
  await stack.reloadSchema();

  const client = createClient(stack.url, stack.serviceRoleKey, {
    realtime: { transport: WebSocket as never },
    auth: { persistSession: false, autoRefreshToken: false },
  });

  console.log(
    `gateway-read: ${ROWS.toLocaleString("en-US")} rows in pages of ${PAGE} (median of ${RUNS} runs)`,
  );
  const gateway = await measure("supabase-js → gateway, paged", async () => {
    let rows = 0;
    for (let offset = 0; offset < ROWS; offset += PAGE) {
      const { data, error } = await client
        .from("bench_rows")
        .select("*")
        .order("id")
        .range(offset, offset + PAGE - 1);
      if (error) throw new Error(error.message);
      rows += data.length;
    }
    return rows;
  });
  const paged = await measure("postgres direct, paged", async () => {
    let rows = 0;
    for (let offset = 0; offset < ROWS; offset += PAGE) {
      rows += (await sql`select * from bench_rows order by id limit ${PAGE} offset ${offset}`).length;
    }
    return rows;
  });
  const whole = await measure(
    "postgres direct, one query",
    async () => (await sql`select * from bench_rows order by id`).length,
  );
  reportFigure({
    figure: `gateway read, ${ROWS.toLocaleString("en-US")} rows in pages`,
    unit: "rows/s",
    measured: gateway,
    reference: { label: "postgres direct, same pages", value: paged },
    ratio: gateway / paged,
  });
  reportFigure({
    figure: `gateway read, ${ROWS.toLocaleString("en-US")} rows in pages, vs one query`,
    unit: "rows/s",
    measured: gateway,
    reference: { label: "postgres direct, one query", value: whole },
    ratio: gateway / whole,
  });
} finally {
  await sql.end();
  await stack.stop();
}
