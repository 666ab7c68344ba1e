import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { CvError, withDeadline } from "../src/index.js";

describe("withDeadline", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("rejects with timeout at the deadline even when the work ignores its signal", async () => {
    let seen: AbortSignal | undefined;
    const call = withDeadline("[test] hang", { timeoutMs: 800 }, 5_000, (signal) => {
      seen = signal;
      return new Promise<never>(() => {});
    });
    const outcome = expect(call).rejects.toMatchObject({
      code: "timeout",
      message: "[test] hang timed out after 800 ms",
    });
    await vi.advanceTimersByTimeAsync(799);
    expect(seen?.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await outcome;
    expect(seen?.aborted).toBe(true);
  });

  it("uses the default deadline when the call gives none", async () => {
    const call = withDeadline("[test] hang", undefined, 300, () => new Promise<never>(() => {}));
    const outcome = expect(call).rejects.toBeInstanceOf(CvError);
    await vi.advanceTimersByTimeAsync(300);
    await outcome;
  });

  it("resolves with the work's value and clears its timer", async () => {
    await expect(withDeadline("[test] ok", undefined, 300, async () => 42)).resolves.toBe(42);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("rejects as unavailable when the caller aborts", async () => {
    const controller = new AbortController();
    const call = withDeadline(
      "[test] cancel",
      { signal: controller.signal },
      5_000,
      () => new Promise(() => {}),
    );
    controller.abort();
    await expect(call).rejects.toMatchObject({ code: "unavailable" });
  });

  it("passes the work's own error through", async () => {
    const failing = withDeadline("[test] fail", undefined, 300, async () => {
      throw new CvError("constraint", "dup");
    });
    await expect(failing).rejects.toMatchObject({ code: "constraint" });
  });
});
