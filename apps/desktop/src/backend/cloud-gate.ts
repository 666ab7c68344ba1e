import type { FailoverRouter } from "@centrovision/core";
import type { Observable, Subscription } from "rxjs";

/**
 * Keeps the router below the cloud while `usable$` says the cloud may not be used on the
 * person's behalf (nobody signed in online, or their token is not good), by pinning the clinic
 * server. It lifts only its own pin: a pin the router set against a flapping link, or one set by
 * hand, stays where it is.
 */
export function gateCloud(
  router: Pick<FailoverRouter, "getStatus" | "pin" | "unpin">,
  usable$: Observable<boolean>,
): Subscription {
  let pinnedHere = false;
  return usable$.subscribe((usable) => {
    const pinned = router.getStatus().pinned;
    if (!usable && pinned === null) {
      router.pin("clinic");
      pinnedHere = true;
    } else if (usable && pinnedHere) {
      pinnedHere = false;
      if (pinned === "clinic") router.unpin();
    }
  });
}
