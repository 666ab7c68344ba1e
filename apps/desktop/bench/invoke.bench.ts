import { performance } from "node:perf_hooks";
import type { ConnectionMode } from "@centrovision/core";
import { reportFigure } from "@centrovision/testkit";
import { DEMO_ROUTER, type Demo, startDemo, waitUntil } from "../src/demo/demo-stack.js";
import { todayInMexicoCity } from "../src/demo/seed.js";

/**
 * Two figures, measured in one run on this machine:
 * 1. what the invoke transport (HTTP + JSON + zod) adds to a day's agenda read, as a ratio to the
 *    same reads through the router directly;
 * 2. how long the mode takes to follow each demo switch, against the router's configured bound.
 */
const ROUNDS = 200;

async function invoke(demo: Demo, command: string, args: unknown): Promise<unknown> {
  const response = await fetch(`${demo.url}/invoke/${command}`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${demo.secret}` },
    body: JSON.stringify(args),
  });
  return response.json();
}

async function timeMode(demo: Demo, flip: () => Promise<void>, mode: ConnectionMode): Promise<number> {
  const start = performance.now();
  await flip();
  await waitUntil(`mode ${mode}`, async () => {
    const status = (await invoke(demo, "get_connection_status", {})) as { mode: string };
    return status.mode === mode;
  });
  return performance.now() - start;
}

const demo = await startDemo({ port: 0 });
try {
  const branch_id = demo.clinic.branches[0]?.id ?? "";
  const date = todayInMexicoCity();
  const { email, password } = demo.accounts.receptionist;
  await invoke(demo, "sign_in", { email, password });
  await waitUntil(
    "the cloud",
    async () => ((await invoke(demo, "get_connection_status", {})) as { mode: string }).mode === "supabase",
  );
  const viaHttp = async () => {
    const t = performance.now();
    for (let i = 0; i < ROUNDS; i += 1) await invoke(demo, "get_appointments", { branch_id, date });
    return performance.now() - t;
  };
  const { dayRange } = await import("../src/backend/day-range.js");
  const direct = async () => {
    const t = performance.now();
    for (let i = 0; i < ROUNDS; i += 1) {
      // The same three reads the command makes: the branch (for its time zone), the day, the patients.
      await demo.router.table("branches").get(branch_id);
      const appointments = await demo.router.table("appointments").list({
        where: { branch_id, starts_at: dayRange(date, "America/Mexico_City") },
        orderBy: [{ column: "starts_at" }],
      });
      const ids = [...new Set(appointments.map((a) => a.patient_id))];
      await demo.router.table("patients").list({ where: { id: { in: ids } } });
    }
    return performance.now() - t;
  };
  await viaHttp();
  await direct();
  const http = await viaHttp();
  const router = await direct();
  reportFigure({
    figure: `agenda read via invoke (cloud tier, ${ROUNDS} reads)`,
    unit: "ms",
    measured: http / ROUNDS,
    reference: { label: "the router directly", value: router / ROUNDS },
    ratio: http / router,
  });

  const bound =
    (DEMO_ROUTER.probeIntervalMs ?? 0) +
    2 * (DEMO_ROUTER.probeTimeoutMs ?? 0) +
    (DEMO_ROUTER.suspectIntervalMs ?? 0);
  const cut = await timeMode(demo, () => demo.setInternet(false), "local");
  const stopped = await timeMode(demo, () => demo.setClinicServer(false), "offline");
  const back = await timeMode(
    demo,
    async () => {
      await demo.setClinicServer(true);
      await demo.setInternet(true);
    },
    "supabase",
  );
  reportFigure({
    figure: "internet cut → Servidor local",
    unit: "ms",
    measured: cut,
    reference: { label: "the router's blackhole bound", value: bound },
    ratio: cut / bound,
  });
  reportFigure({
    figure: "clinic server stopped (refused) → Sin conexión",
    unit: "ms",
    measured: stopped,
    reference: { label: "the same bound", value: bound },
    ratio: stopped / bound,
  });
  console.log(
    `both restored → Conectado a la nube: ${back.toFixed(0)} ms (rise ${DEMO_ROUTER.rise} probes + hold-down ${DEMO_ROUTER.holdDownMs} ms + drain)`,
  );
} finally {
  await demo.stop();
}
