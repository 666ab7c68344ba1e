// What the fleet bench prints and reports (reportFigure): each step's per-clinic lines and figures,
// the growth with N, and the extrapolation to 50 clinics. `plan` is the run's shape:
// { rate, loadS, seedRows, idleS, warmupS }.
import { reportFigure } from "@centrovision/testkit";
import { fixed, linearFit, mean, quantile } from "./fleet-figures.mjs";

/** The config the daemons run with (the first clinic's; the others differ in names only). */
export function printConfig(clinic, plan) {
  console.log(`each daemon's config (defaults but [http] port; clinic ${clinic.index}'s):`);
  const shown = clinic.config.replace(/^anon_key = .*$/m, 'anon_key = "<the cloud\'s anon key>"');
  for (const line of shown.trimEnd().split("\n")) console.log(`  ${line}`);
  console.log(
    `every other setting its default; run as the service runs it (the built CLI, with the systemd unit's Environment= lines); ${plan.rate} writes/s per clinic and direction under load; idle window ${plan.idleS} s, after ${plan.warmupS} s of nothing written once in sync`,
  );
}

/** A step's lines, per clinic: its initial sync, its idle cost, its lags and bytes under load. */
export function printStep({ n, joined, warmup, idle, loads }, plan) {
  console.log(`\n── N = ${n} ${"─".repeat(60)}`);
  for (const { clinic, sync } of joined) {
    console.log(
      `initial sync, clinic ${clinic.index}: ${plan.seedRows.toLocaleString("en")} rows in ${fixed(sync.fromStartS, 2)} s from its start (${fixed(sync.fromSpawnS, 2)} s from spawn)`,
    );
  }
  console.log(
    `first ${fixed(warmup.seconds, 0)} s in sync, not counted as idle: daemons ${warmup.daemonCpu.map((cpu) => fixed(cpu, 3)).join(", ")} CPU-s/min`,
  );
  console.log(`idle, ${fixed(idle.seconds, 0)} s:`);
  idle.perClinic.forEach((clinic, i) => {
    const paths = clinic.paths
      .map(([path, rate]) => `${path.replace(/^.*\//, "")} ${fixed(rate)}`)
      .join(", ");
    console.log(
      `  clinic ${i + 1}: ${fixed(clinic.requests)} requests/min (${paths || "none"}), ${fixed(clinic.bytes / 1024, 2)} KiB/min ` +
        `(a sync request and its answer with no rows: ${fixed(clinic.emptySyncRequest, 0)} B); daemon ${fixed(clinic.daemonCpu, 3)} CPU-s/min`,
    );
  });
  const c = idle.cloud;
  console.log(
    `  cloud: ${fixed(c.clinicRequests)} requests/min from the clinics (+${fixed(c.otherRequests)} from other callers); ` +
      `database ${fixed(c.dbCpu, 3)} + gateway ${fixed(c.gatewayCpu, 3)} CPU-s/min; ` +
      `Realtime ${c.realtimeOpen} open, ${fixed(c.realtimeBytes / 1024, 2)} KiB/min; ` +
      `catalog seq scans ${fixed(c.catalogScans, 0)}/min (pg_enum ${fixed(c.enumScans, 0)}); autovacuumed in the window: ${c.autovacuumed.join(", ") || "none"}`,
  );
  console.log(`  clinic server (all clinic databases): ${fixed(idle.clinicDbCpu, 3)} CPU-s/min`);
  for (const [direction, results] of Object.entries(loads)) {
    console.log(
      `load ${direction === "down" ? "cloud → clinic" : "clinic → cloud"}, ${plan.rate} rows/s per clinic for ${plan.loadS} s:`,
    );
    results.forEach((r, i) => {
      console.log(
        `  clinic ${i + 1}: ${r.arrived}/${r.rows} rows arrived, lag p50 ${fixed(quantile(r.lags, 0.5), 3)} s, p95 ${fixed(quantile(r.lags, 0.95), 3)} s; ` +
          `${fixed(r.bytes / r.rows, 0)} B/row on the wire in ${r.requests} sync requests (${fixed((r.bytes - r.idleBytes) / r.rows, 0)} B/row above idle polling), ` +
          `row ${fixed(r.rowSize, 0)} B (pg_column_size), ${fixed(r.jsonSize, 0)} B as JSON`,
      );
    });
  }
}

/** The step's figures, as the root table files them. */
export function reportStep({ n, joined, warmup, idle, loads }, plan) {
  const requests = idle.perClinic.map((clinic) => clinic.requests);
  reportFigure({
    figure: `N=${n}: idle cloud requests/min, worst clinic`,
    unit: "/min",
    measured: Math.max(...requests),
    reference: { label: "mean", value: mean(requests) },
    goal: { of: "measured", atMost: 30 },
  });
  const cloudCpu = idle.cloud.dbCpu + idle.cloud.gatewayCpu;
  reportFigure({
    figure: `N=${n}: idle cloud CPU per clinic`,
    unit: "CPU-s/min",
    measured: cloudCpu / n,
    reference: { label: "database part", value: idle.cloud.dbCpu / n },
  });
  const daemonCpu = idle.perClinic.map((clinic) => clinic.daemonCpu);
  reportFigure({
    figure: `N=${n}: daemon idle CPU, worst clinic`,
    unit: "CPU-s/min",
    measured: Math.max(...daemonCpu),
    reference: { label: "mean", value: mean(daemonCpu) },
    goal: { of: "measured", atMost: 0.2 },
  });
  reportFigure({
    figure: `N=${n}: daemon CPU in the first minute in sync, worst clinic`,
    unit: "CPU-s/min",
    measured: Math.max(...warmup.daemonCpu),
    reference: { label: "mean", value: mean(warmup.daemonCpu) },
  });
  for (const [direction, results] of Object.entries(loads)) {
    const way = direction === "down" ? "cloud→clinic" : "clinic→cloud";
    const rows = results.reduce((sum, r) => sum + r.rows, 0);
    const perRow = results.reduce((sum, r) => sum + r.bytes, 0) / rows;
    const rowSize = mean(results.map((r) => r.rowSize));
    reportFigure({
      figure: `N=${n}: sync bytes per row ${way}`,
      unit: "B/row",
      measured: perRow,
      reference: { label: "row data", value: rowSize },
      ratio: perRow / rowSize,
      goal: { of: "ratio", atMost: 2 },
    });
    const lags = results.flatMap((r) => r.lags);
    reportFigure({
      figure: `N=${n}: lag p95 ${way}`,
      unit: "s",
      measured: quantile(lags, 0.95),
      reference: { label: "p50", value: quantile(lags, 0.5) },
      goal: { of: "measured", atMost: 1.5 },
    });
  }
  const syncs = joined.map(({ sync }) => sync);
  reportFigure({
    figure: `N=${n}: initial sync, ${plan.seedRows.toLocaleString("en")} rows, slowest new clinic`,
    unit: "s",
    measured: Math.max(...syncs.map((sync) => sync.fromStartS)),
    reference: { label: "from spawn", value: Math.max(...syncs.map((sync) => sync.fromSpawnS)) },
  });
}

/** One line per step: how the per-clinic and total figures grow with N. */
export function printGrowth(steps) {
  console.log(`\n── growth with N (idle figures per minute; lag p50/p95 in s) ${"─".repeat(20)}`);
  console.log(
    "    N  req/clinic  cloud req  cloud CPU-s (db+gw)  daemon CPU-s  B/row ↓   B/row ↑   lag ↓        lag ↑        initial sync",
  );
  for (const { n, joined, idle, loads } of steps) {
    const perRow = (results) =>
      results.reduce((sum, r) => sum + r.bytes, 0) / results.reduce((sum, r) => sum + r.rows, 0);
    const lag = (results) => {
      const lags = results.flatMap((r) => r.lags);
      return `${fixed(quantile(lags, 0.5), 2)}/${fixed(quantile(lags, 0.95), 2)}`;
    };
    console.log(
      [
        String(n).padStart(5),
        fixed(mean(idle.perClinic.map((c) => c.requests))).padStart(11),
        fixed(idle.cloud.clinicRequests + idle.cloud.otherRequests).padStart(10),
        `${fixed(idle.cloud.dbCpu + idle.cloud.gatewayCpu, 3)} (${fixed(idle.cloud.dbCpu, 3)}+${fixed(idle.cloud.gatewayCpu, 3)})`.padStart(
          20,
        ),
        fixed(mean(idle.perClinic.map((c) => c.daemonCpu)), 3).padStart(13),
        fixed(perRow(loads.down), 0).padStart(8),
        fixed(perRow(loads.up), 0).padStart(9),
        lag(loads.down).padStart(12),
        lag(loads.up).padStart(12),
        `${fixed(Math.max(...joined.map(({ sync }) => sync.fromStartS)), 2)} s`.padStart(13),
      ].join(" "),
    );
  }
}

/** Linear fits of the cloud's idle totals against N, extrapolated to 50 clinics. */
export function extrapolate(steps) {
  const fit = (y) => linearFit(steps.map((step) => ({ x: step.n, y: y(step) })));
  const requests = fit((s) => s.idle.cloud.clinicRequests + s.idle.cloud.otherRequests);
  const cpu = fit((s) => s.idle.cloud.dbCpu + s.idle.cloud.gatewayCpu);
  const realtime = fit((s) => s.idle.cloud.realtimeBytes);
  const at50 = (line) => line.intercept + line.slope * 50;
  console.log(
    `\n── 50 clinics, extrapolated ${"─".repeat(50)}\n` +
      `Assumptions: the cloud's idle cost is linear in N (a least-squares line through N = ${steps.map((s) => s.n).join(", ")}: ` +
      "a fixed part plus the same cost per clinic), every clinic is idle as these were (same config, same\n" +
      "one-branch scope, nothing written), and the cloud is one PostgreSQL and one gateway of this machine's\n" +
      "speed (a 2-core machine the clinic servers and daemons share, so CPU figures carry their load too).\n" +
      `  idle requests:  ${fixed(requests.intercept)} + ${fixed(requests.slope)} × N per minute → ${fixed(at50(requests), 0)}/min (${fixed(at50(requests) / 60)}/s)\n` +
      `  idle cloud CPU: ${fixed(cpu.intercept, 3)} + ${fixed(cpu.slope, 3)} × N CPU-s/min → ${fixed(at50(cpu), 2)} CPU-s/min (${fixed(at50(cpu) / 60, 3)} of a core)\n` +
      `  Realtime:       ${fixed(realtime.slope / 1024, 2)} KiB/min per clinic → ${fixed(at50(realtime) / 1024, 0)} KiB/min`,
  );
  reportFigure({
    figure: "50 clinics (linear fit): idle cloud requests/min",
    unit: "/min",
    measured: at50(requests),
    reference: { label: "per clinic", value: requests.slope },
    goal: { of: "measured", atMost: 50 * 30 },
  });
  reportFigure({
    figure: "50 clinics (linear fit): idle cloud CPU",
    unit: "CPU-s/min",
    measured: at50(cpu),
    reference: { label: "per clinic", value: cpu.slope },
  });
}
