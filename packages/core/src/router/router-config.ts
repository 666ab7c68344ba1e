import * as z from "zod";
import { parseConfig } from "../validate.js";

const ms = (fallback: number) => z.number().int().nonnegative().default(fallback);

/**
 * Every number the router runs on, with defaults chosen for the clinic's targets
 * (see the core README, "Tuning the router"):
 *
 * - blackholed cloud → clinic in ≤ 3 s: a probe that hangs fails at `probeTimeoutMs`;
 *   worst case the cut lands just after a good probe: interval + timeout + suspect
 *   interval + timeout = 1000 + 800 + 200 + 800 = 2.8 s for `fall` = 2.
 * - refused cloud → clinic in ≤ 1.5 s: failures are immediate, 1000 + 200 = 1.2 s.
 * - one lost probe never switches: `fall` ≥ 2.
 * - a link flapping every few seconds does not make the PCs flap: coming back needs
 *   `rise` good probes in a row AND `holdDownMs` without any failure, and the hold-down
 *   doubles each time a tier falls again soon after it came back.
 */
export const routerConfigSchema = z
  .object({
    /** Probe period of a tier that is up. */
    probeIntervalMs: ms(1_000),
    /** Probe period right after a failure, to confirm or clear it fast. */
    suspectIntervalMs: ms(200),
    /** Probe period of a tier that is down (plus jitter, so PCs do not probe in lockstep). */
    downIntervalMs: ms(2_000),
    /** Fraction of `downIntervalMs` added at random, 0–1. */
    downJitter: z.number().min(0).max(1).default(0.25),
    /** Deadline of one probe. */
    probeTimeoutMs: z.number().int().positive().default(800),
    /** Consecutive failures (probes or real calls) that mark a tier down. */
    fall: z.number().int().min(1).default(2),
    /** Consecutive successful probes a down tier needs before it can serve again. */
    rise: z.number().int().min(1).default(3),
    /** Time a recovered tier must go without any failure before it serves again. */
    holdDownMs: ms(10_000),
    /** Cap of the doubling hold-down. */
    maxHoldDownMs: ms(300_000),
    /** A tier that falls again within this time after coming back is flapping: its hold-down doubles. */
    flapWindowMs: ms(60_000),
    /** After this long up without falling, the hold-down goes back to `holdDownMs`. */
    stableResetMs: ms(600_000),
    /** More tier switches than this within `switchWindowMs` pins the lower tier… */
    maxSwitches: z.number().int().min(1).default(6),
    switchWindowMs: ms(600_000),
    /** …for this long, and the status says why. */
    flapPinMs: ms(600_000),
    /** Default deadline of a routed call, across all the tiers it tries. */
    callTimeoutMs: z.number().int().positive().default(5_000),
    /** How often a pending failback asks whether the lower tier has pushed its outage writes. */
    failbackCheckIntervalMs: z.number().int().positive().default(2_000),
    /** Recent cloud writes kept to make them present on the clinic server at failover. */
    journalSize: z.number().int().nonnegative().default(500),
    journalTtlMs: ms(300_000),
    /**
     * Hedged reads: a read the active tier has not answered within a few times its recent p95
     * latency (never less than `hedgeFloorMs`, never more than `hedgeMaxMs`) is also asked of the
     * next lower tier that is up, and the first answer wins. At a cut, a read in flight then waits
     * about `hedgeMaxMs` at worst instead of the whole failover; a healthy tier's answers come well
     * inside the delay, so hedges stay rare. Writes are never hedged.
     */
    hedgeReads: z.boolean().default(true),
    hedgeLatencyFactor: z.number().min(1).default(3),
    hedgeFloorMs: ms(300),
    hedgeMaxMs: ms(1_000),
  })
  .strict()
  .refine((config) => config.hedgeFloorMs <= config.hedgeMaxMs, {
    message: "hedgeFloorMs must not be above hedgeMaxMs",
    path: ["hedgeFloorMs"],
  });

export type RouterConfig = z.output<typeof routerConfigSchema>;
export type RouterConfigInput = z.input<typeof routerConfigSchema>;

/** Parses once and freezes; every problem is listed with its path. */
export function parseRouterConfig(input: unknown = {}): Readonly<RouterConfig> {
  return parseConfig("[core] invalid failover router config", routerConfigSchema, input);
}
