import type { FailoverRouter, Tier } from "@centrovision/core";
import type { Observable, Subscription } from "rxjs";

/** Which servers may be used on the signed-in person's behalf. */
export interface UsableTiers {
  /** An online session with a good access token. */
  readonly cloud: boolean;
  /** A good clinic session (sql/0003). */
  readonly clinic: boolean;
}

const ORDER: readonly (Tier | null)[] = [null, "clinic", "device"];

/**
 * Keeps the router below the servers the person may not use: pins the clinic server while only it
 * may serve them, this PC while neither may (nobody signed in, a device sign-in, sessions expired
 * in an outage and not renewed yet), and nothing while the cloud may. It lifts or lowers only its
 * own pin: a pin the router set against a flapping link, or one set by hand, stays unless the
 * person's sessions call for a lower ceiling.
 */
export function gateTiers(
  router: Pick<FailoverRouter, "getStatus" | "pin" | "unpin">,
  usable$: Observable<UsableTiers>,
): Subscription {
  let ours: Tier | null = null;
  return usable$.subscribe((usable) => {
    const wanted: Tier | null = usable.cloud ? null : usable.clinic ? "clinic" : "device";
    const pinned = router.getStatus().pinned;
    const foreign = pinned !== null && pinned !== ours;
    if (foreign && ORDER.indexOf(wanted) <= ORDER.indexOf(pinned)) {
      ours = null;
      return;
    }
    if (wanted === null) {
      if (pinned !== null && pinned === ours) router.unpin();
    } else if (pinned !== wanted) {
      router.pin(wanted);
    }
    ours = wanted;
  });
}
