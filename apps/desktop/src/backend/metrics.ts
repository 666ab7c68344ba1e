import { type ConnectionMode, type FailoverRouter, TIERS } from "@centrovision/core";
import { Counter, Gauge, Registry } from "prom-client";

/**
 * The router's counters and health in Prometheus text format (`GET /metrics` on the backend), read
 * at scrape time: switches, time in each tier, probe latency, calls retried on another tier,
 * hedged reads and writes whose outcome was unknown. Names and numbers only, never row data.
 */
const MODES: readonly ConnectionMode[] = ["supabase", "local", "offline"];

export function createRouterMetrics(router: FailoverRouter): Registry {
  const registry = new Registry();
  const registers = [registry];
  const counter = (name: string, help: string, read: () => number) =>
    new Counter({
      name,
      help,
      registers,
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  counter(
    "centrovision_router_switches_total",
    "Times the active tier changed",
    () => router.counters().switches,
  );
  counter(
    "centrovision_router_unknown_writes_total",
    "Writes whose outcome was unknown because their tier stopped answering mid-call",
    () => router.counters().unknownWrites,
  );
  counter(
    "centrovision_router_retried_calls_total",
    "Calls a tier failed that another tier was asked to serve",
    () => router.counters().retriedCalls,
  );
  counter(
    "centrovision_router_hedged_reads_total",
    "Reads also asked of a lower tier because the active one was slow to answer",
    () => router.counters().hedgedReads,
  );
  counter(
    "centrovision_router_hedges_won_total",
    "Hedged reads the lower tier answered first",
    () => router.counters().hedgesWon,
  );
  new Gauge({
    name: "centrovision_router_time_in_tier_seconds",
    help: "Time spent on each tier, including the current stay",
    labelNames: ["tier"],
    registers,
    collect() {
      const spent = router.counters().timeInTierMs;
      for (const tier of TIERS) this.set({ tier }, (spent[tier] ?? 0) / 1000);
    },
  });
  new Gauge({
    name: "centrovision_router_tier_up",
    help: "1 when the tier may serve calls, 0 when it is down or not configured",
    labelNames: ["tier"],
    registers,
    collect() {
      const { tiers } = router.getStatus();
      for (const tier of TIERS) this.set({ tier }, tiers[tier].available ? 1 : 0);
    },
  });
  new Gauge({
    name: "centrovision_router_probe_latency_seconds",
    help: "Latency of each tier's last successful probe",
    labelNames: ["tier"],
    registers,
    collect() {
      const { tiers } = router.getStatus();
      for (const tier of TIERS) {
        const ms = tiers[tier].latencyMs;
        if (ms !== null) this.set({ tier }, ms / 1000);
      }
    },
  });
  new Gauge({
    name: "centrovision_router_mode",
    help: "1 for the mode the PC works in now (supabase, local, offline)",
    labelNames: ["mode"],
    registers,
    collect() {
      const { mode } = router.getStatus();
      for (const each of MODES) this.set({ mode: each }, each === mode ? 1 : 0);
    },
  });
  new Gauge({
    name: "centrovision_pending_changes",
    help: "Writes made on this PC or its tier that have not reached the cloud yet",
    registers,
    collect() {
      this.set(router.getStatus().pendingChanges);
    },
  });
  return registry;
}
