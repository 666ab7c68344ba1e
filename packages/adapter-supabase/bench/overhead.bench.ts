/**
 * Adapter overhead vs raw supabase-js, on the same local Supabase, data and requests:
 * list (100 rows), get, upsert. Reports the p50 of each and their ratio (target ≤ 1.2×), and
 * prints the p95s.
 * Calls alternate adapter/raw (order flipped every round) so drift in the machine's load hits both.
 *
 *   npm run bench                 (in packages/adapter-supabase)
 */
import { randomUUID } from "node:crypto";
import { tables } from "@centrovision/core";
import { reportFigure, startLocalSupabase } from "@centrovision/testkit";
import { createFixtures } from "@centrovision/testkit/contract";
import { createClient, type WebSocketLikeConstructor } from "@supabase/supabase-js";
import WebSocket from "ws";
import { createSupabaseSource } from "../src/index.js";

const ROUNDS = Number(process.argv[2] ?? 400);
const WARMUP = 50;
const ROWS = 100;
const TARGET = 1.2;

const stack = await startLocalSupabase({ log: () => {} });
try {
  const fixtures = createFixtures();
  const adapter = createSupabaseSource({ url: stack.url, key: stack.serviceRoleKey });
  const raw = createClient(stack.url, stack.serviceRoleKey, {
    accessToken: async () => stack.serviceRoleKey,
    auth: { persistSession: false, autoRefreshToken: false },
    realtime: { transport: WebSocket as unknown as WebSocketLikeConstructor },
  });
  const branch = await adapter.table("branches").insert(fixtures.branch());
  const patients = await adapter
    .table("patients")
    .upsertMany(Array.from({ length: ROWS }, () => fixtures.patient(branch.id, { document_id: null })));
  const columns = tables.patients.columns.join(",");
  const target = patients[0]?.id as string;
  const upserted = fixtures.patient(branch.id, { id: randomUUID(), document_id: null });
  const repo = adapter.table("patients");

  const raise = (error: unknown) => {
    if (error) throw new Error(`raw supabase-js failed: ${JSON.stringify(error)}`);
  };
  const ops: Record<string, [() => Promise<unknown>, () => Promise<unknown>]> = {
    [`list: ${ROWS} patients`]: [
      () => repo.list({ where: { branch_id: branch.id }, limit: ROWS }),
      async () =>
        raise(
          (
            await raw
              .from("patients")
              .select(columns)
              .eq("branch_id", branch.id)
              .order("id")
              .range(0, ROWS - 1)
              .retry(false)
          ).error,
        ),
    ],
    "get: one patient by id": [
      () => repo.get(target),
      async () =>
        raise((await raw.from("patients").select(columns).eq("id", target).maybeSingle().retry(false)).error),
    ],
    "upsert: one patient": [
      () => repo.upsert(upserted),
      async () =>
        raise(
          (
            await raw
              .from("patients")
              .upsert(upserted, { onConflict: "id" })
              .select(columns)
              .single()
              .retry(false)
          ).error,
        ),
    ],
  };

  const percentile = (sorted: number[], p: number) =>
    sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
  console.log(
    `adapter-supabase overhead — ${ROUNDS} rounds per operation after ${WARMUP} warm-up, local gateway, Node ${process.version}`,
  );
  for (const [name, [viaAdapter, viaRaw]] of Object.entries(ops)) {
    const times: [number[], number[]] = [[], []];
    for (let round = 0; round < WARMUP + ROUNDS; round++) {
      const order = round % 2 === 0 ? [0, 1] : [1, 0];
      for (const which of order) {
        const started = performance.now();
        await (which === 0 ? viaAdapter() : viaRaw());
        if (round >= WARMUP) times[which as 0 | 1].push(performance.now() - started);
      }
    }
    const [a, r] = times.map((list) => list.sort((x, y) => x - y)) as [number[], number[]];
    reportFigure({
      figure: name,
      unit: "ms",
      measured: percentile(a, 0.5),
      reference: { label: "raw supabase-js", value: percentile(r, 0.5) },
      ratio: percentile(a, 0.5) / percentile(r, 0.5),
      goal: { of: "ratio", atMost: TARGET },
    });
    console.log(`  p95 ${percentile(a, 0.95).toFixed(2)} ms vs ${percentile(r, 0.95).toFixed(2)} ms`);
  }
  await adapter.close();
} finally {
  await stack.stop();
}
