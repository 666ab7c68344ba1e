import { Subject } from "rxjs";
import { describe, expect, it } from "vitest";
import { oneRunAtATime } from "../src/backend/one-run-at-a-time.js";

describe("oneRunAtATime", () => {
  it("runs once more after a run for what came during it, never two at once, and then rests", async () => {
    const wakeUps = new Subject<string>();
    const finish: Array<() => void> = [];
    let running = 0;
    let most = 0;
    const work = () =>
      new Promise<void>((resolve) => {
        running += 1;
        most = Math.max(most, running);
        finish.push(() => {
          running -= 1;
          resolve();
        });
      });
    const subscription = wakeUps.pipe(oneRunAtATime(work)).subscribe();
    const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

    wakeUps.next("a");
    await settle();
    expect(finish).toHaveLength(1);
    // Two wake-ups while the first run is in flight: one more run after it, not two, not none.
    wakeUps.next("b");
    wakeUps.next("c");
    await settle();
    expect(finish).toHaveLength(1);
    finish[0]?.();
    await settle();
    expect(finish).toHaveLength(2);
    finish[1]?.();
    await settle();
    expect(finish).toHaveLength(2);
    // At rest, the next wake-up runs at once.
    wakeUps.next("d");
    await settle();
    expect(finish).toHaveLength(3);
    finish[2]?.();
    await settle();
    expect(most).toBe(1);
    subscription.unsubscribe();
  });
});
