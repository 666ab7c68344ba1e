import { createFailoverRouter, createMemorySource, type FailoverRouter } from "@centrovision/core";
import { Subject } from "rxjs";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { gateCloud } from "../src/backend/cloud-gate.js";

describe("the cloud gate", () => {
  let router: FailoverRouter;
  let usable: Subject<boolean>;

  beforeEach(() => {
    router = createFailoverRouter({
      id: "gate-test",
      sources: [
        createMemorySource({ id: "cloud" }),
        createMemorySource({ id: "clinic" }),
        createMemorySource({ id: "device" }),
      ],
    });
    usable = new Subject<boolean>();
    gateCloud(router, usable);
  });

  afterEach(() => router.close());

  it("pins the clinic server while the cloud may not be used, and lifts that pin when it may", () => {
    usable.next(false);
    expect(router.getStatus().pinned).toBe("clinic");
    usable.next(true);
    expect(router.getStatus().pinned).toBeNull();
  });

  it("leaves a pin it did not set: one set by hand (or the router's own flap pin) outlives a sign-in", () => {
    router.pin("device");
    usable.next(false);
    usable.next(true);
    expect(router.getStatus().pinned).toBe("device");

    router.unpin();
    usable.next(false);
    router.pin("device");
    usable.next(true);
    expect(router.getStatus().pinned).toBe("device");
  });
});
