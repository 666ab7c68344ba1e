import type { TierHealth } from "../status.js";
import type { RouterConfig } from "./router-config.js";

/** What the router knows about one tier. Pure data: every change goes through {@link nextHealth}. */
export interface HealthState {
  readonly health: TierHealth;
  readonly consecutiveFailures: number;
  readonly consecutiveSuccesses: number;
  /** Time of the last failure (probe or real call), or null if none yet. */
  readonly lastFailureAt: number | null;
  /** When the tier last became up, or null while it is not up. */
  readonly upSince: number | null;
  /** When the tier last came back from down; the first success after start-up is not a comeback. */
  readonly recoveredAt: number | null;
  /** Failure-free time a down tier needs before it serves again; doubles while it flaps. */
  readonly holdDownMs: number;
  readonly lastProbeAt: number | null;
  readonly latencyMs: number | null;
  readonly lastError: string | null;
}

export type HealthEvent =
  | {
      readonly kind: "success";
      readonly at: number;
      readonly latencyMs: number;
      /** The tier answered but refused our credentials: it stays up and the status says why. */
      readonly warning?: string;
    }
  | { readonly kind: "failure"; readonly at: number; readonly error: string; readonly fromProbe: boolean };

export function initialHealth(config: RouterConfig): HealthState {
  return {
    health: "unknown",
    consecutiveFailures: 0,
    consecutiveSuccesses: 0,
    lastFailureAt: null,
    upSince: null,
    recoveredAt: null,
    holdDownMs: config.holdDownMs,
    lastProbeAt: null,
    latencyMs: null,
    lastError: null,
  };
}

function onFailure(
  state: HealthState,
  event: Extract<HealthEvent, { kind: "failure" }>,
  config: RouterConfig,
) {
  const failures = state.consecutiveFailures + 1;
  const base = {
    ...state,
    consecutiveFailures: failures,
    consecutiveSuccesses: 0,
    lastFailureAt: event.at,
    lastError: event.error,
    lastProbeAt: event.fromProbe ? event.at : state.lastProbeAt,
  };
  if (state.health === "down") return base;
  if (failures < config.fall) return { ...base, health: "suspect" as const };
  // Falling soon after coming back is a flap: make the next comeback wait longer.
  const flapped = state.recoveredAt !== null && event.at - state.recoveredAt < config.flapWindowMs;
  const stable = state.upSince !== null && event.at - state.upSince >= config.stableResetMs;
  const holdDownMs = flapped
    ? Math.min(state.holdDownMs * 2, config.maxHoldDownMs)
    : stable
      ? config.holdDownMs
      : state.holdDownMs;
  return { ...base, health: "down" as const, upSince: null, holdDownMs };
}

function onSuccess(
  state: HealthState,
  event: Extract<HealthEvent, { kind: "success" }>,
  config: RouterConfig,
) {
  const successes = state.consecutiveSuccesses + 1;
  const base = {
    ...state,
    consecutiveFailures: 0,
    consecutiveSuccesses: successes,
    lastProbeAt: event.at,
    latencyMs: event.latencyMs,
    lastError: event.warning ?? state.lastError,
  };
  if (state.health === "up") return base;
  if (state.health === "down") {
    const quietFor = state.lastFailureAt === null ? Number.POSITIVE_INFINITY : event.at - state.lastFailureAt;
    if (successes < config.rise || quietFor < state.holdDownMs) return base;
  }
  // Suspect: one success clears it; the tier never stopped serving.
  if (state.health === "suspect") return { ...base, health: "up" as const };
  const recoveredAt = state.health === "down" ? event.at : state.recoveredAt;
  return { ...base, health: "up" as const, upSince: event.at, recoveredAt };
}

/**
 * The hysteresis: a tier goes down after `fall` consecutive failures and comes
 * back only after `rise` consecutive successes and `holdDownMs` without any
 * failure; the hold-down doubles (up to `maxHoldDownMs`) when a tier falls
 * within `flapWindowMs` of coming back, and resets after `stableResetMs` up.
 */
export function nextHealth(state: HealthState, event: HealthEvent, config: RouterConfig): HealthState {
  return event.kind === "success" ? onSuccess(state, event, config) : onFailure(state, event, config);
}

/** A tier that may serve calls: it has not been proved down. */
export function isServing(state: HealthState): boolean {
  return state.health !== "down";
}

/** How long to wait before the next probe of a tier in this state. */
export function probeDelayMs(state: HealthState, config: RouterConfig, random: () => number): number {
  switch (state.health) {
    case "suspect":
      return config.suspectIntervalMs;
    case "down":
      return config.downIntervalMs + Math.floor(random() * config.downJitter * config.downIntervalMs);
    default:
      return config.probeIntervalMs;
  }
}
