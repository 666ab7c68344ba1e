import { createFailoverRouter, createMemorySource, type FailoverRouter } from "@centrovision/core";
import { Subject } from "rxjs";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { gateTiers, type UsableTiers } from "../src/backend/tier-gate.js";

describe("the tier gate", () => {
  let router: FailoverRouter;
  let usable: Subject<UsableTiers>;

  beforeEach(() => {
    router = createFailoverRouter({
      id: "gate-test",
      sources: [
        createMemorySource({ id: "cloud" }),
        createMemorySource({ id: "clinic" }),
        createMemorySource({ id: "device" }),
      ],
    });
    usable = new Subject<UsableTiers>();
    gateTiers(router, usable);
  });

  afterEach(() => router.close());

  it("pins the highest server the person may use, and lifts that pin when the cloud may be used", () => {
    usable.next({ cloud: false, clinic: true });
    expect(router.getStatus().pinned).toBe("clinic");
    usable.next({ cloud: false, clinic: false });
    expect(router.getStatus().pinned).toBe("device");
    usable.next({ cloud: false, clinic: true });
    expect(router.getStatus().pinned).toBe("clinic");
    usable.next({ cloud: true, clinic: true });
    expect(router.getStatus().pinned).toBeNull();
  });

  it("leaves a pin it did not set when it is as low as the person needs: one set by hand outlives a sign-in", () => {
    router.pin("device");
    usable.next({ cloud: false, clinic: true });
    usable.next({ cloud: true, clinic: true });
    expect(router.getStatus().pinned).toBe("device");

    router.unpin();
    usable.next({ cloud: false, clinic: true });
    router.pin("device");
    usable.next({ cloud: true, clinic: true });
    expect(router.getStatus().pinned).toBe("device");
  });

  it("lowers a foreign pin that is too high for the person: no clinic session, no clinic server", () => {
    router.pin("clinic");
    usable.next({ cloud: false, clinic: false });
    expect(router.getStatus().pinned).toBe("device");
    usable.next({ cloud: true, clinic: true });
    expect(router.getStatus().pinned).toBeNull();
  });
});
