import { describe, expect, it } from "vitest";
import { type HealthEvent, type HealthState, initialHealth, nextHealth } from "../src/router/health.js";
import { parseRouterConfig } from "../src/router/router-config.js";

const config = parseRouterConfig({
  fall: 2,
  rise: 3,
  holdDownMs: 10_000,
  maxHoldDownMs: 40_000,
  flapWindowMs: 60_000,
});
const ok = (at: number): HealthEvent => ({ kind: "success", at, latencyMs: 5 });
const fail = (at: number): HealthEvent => ({ kind: "failure", at, error: "timeout: x", fromProbe: true });
const run = (events: HealthEvent[], from: HealthState = initialHealth(config)) =>
  events.reduce((state, event) => nextHealth(state, event, config), from);

describe("tier health hysteresis", () => {
  it("goes unknown → up on the first success, suspect on one failure, down on `fall` in a row", () => {
    expect(run([ok(0)]).health).toBe("up");
    expect(run([ok(0), fail(1)]).health).toBe("suspect");
    expect(run([ok(0), fail(1), ok(2)]).health).toBe("up");
    expect(run([ok(0), fail(1), fail(2)]).health).toBe("down");
  });

  it("comes back only after `rise` successes and the hold-down without failures", () => {
    const down = run([ok(0), fail(1_000), fail(2_000)]);
    expect(run([ok(3_000), ok(4_000), ok(5_000)], down).health).toBe("down");
    expect(run([ok(3_000), ok(6_000), ok(12_000)], down).health).toBe("up");
    expect(run([ok(3_000), ok(6_000), fail(7_000), ok(12_000), ok(13_000), ok(14_000)], down).health).toBe(
      "down",
    );
  });

  it("doubles the hold-down when a tier falls soon after coming back, up to the cap, and resets when stable", () => {
    let state = run([ok(0), fail(1_000), fail(2_000)]);
    expect(state.holdDownMs).toBe(10_000);
    let t = 2_000;
    const flap = () => {
      const back = state.holdDownMs;
      state = run([ok(t + 1), ok(t + 2), ok(t + back + 1)], state);
      expect(state.health).toBe("up");
      t += back + 10;
      state = run([fail(t), fail(t + 1)], state);
      expect(state.health).toBe("down");
      t += 1;
    };
    flap();
    expect(state.holdDownMs).toBe(20_000);
    flap();
    expect(state.holdDownMs).toBe(40_000);
    flap();
    expect(state.holdDownMs).toBe(40_000);
    state = run([ok(t + 1), ok(t + 2), ok(t + 40_002)], state);
    t += 40_002 + config.stableResetMs;
    state = run([fail(t), fail(t + 1)], state);
    expect(state.holdDownMs).toBe(10_000);
  });
});
