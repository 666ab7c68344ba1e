import { randomUUID } from "node:crypto";
import type { ConnectionMode, FailoverRouter } from "@centrovision/core";
import type { Consultation } from "@centrovision/testkit/nodes";

/** What a steady load saw: every failure a caller got, every write acknowledged and by which mode. */
export interface LoadReport {
  readonly failures: readonly { kind: "read" | "write"; code: string }[];
  /** Acknowledged appointment ids with the router's mode when the write returned. */
  readonly writes: ReadonlyMap<string, ConnectionMode>;
  readonly reads: number;
  /** Every mode the router reported while the load ran, in order, repeats collapsed. */
  readonly modes: readonly ConnectionMode[];
}

/** Tag in `reason` of every appointment a load writes, to find them with a direct query. */
export function loadTag(run: string): string {
  return `router load ${run}`;
}

/** What `during` can watch while the load runs. */
export interface LiveLoad {
  /** Writes acknowledged while the router was in `mode`. */
  writesIn(mode: ConnectionMode): number;
  /** Ids of the writes acknowledged so far while the router was in `mode`. */
  idsIn(mode: ConnectionMode): string[];
}

/** Polls `condition` every 20 ms (a readiness wait, not a timing assertion); rejects after `ms`. */
export async function until(
  condition: () => boolean | Promise<boolean>,
  ms = 20_000,
  what = "a condition",
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * Two readers and one writer against the router, back to back (a PC's reception desk, busier than
 * a real one), until `during` settles. A write is a new appointment with a client id, as the app
 * makes it. Resolves with what the load saw once every call in flight returned.
 */
export async function underLoad(
  router: FailoverRouter,
  seed: Consultation,
  run: string,
  during: (live: LiveLoad) => Promise<void>,
): Promise<LoadReport> {
  const failures: { kind: "read" | "write"; code: string }[] = [];
  const writes = new Map<string, ConnectionMode>();
  const modes: ConnectionMode[] = [];
  let reads = 0;
  let stop = false;
  const watch = router.status$.subscribe((status) => {
    if (modes.at(-1) !== status.mode) modes.push(status.mode);
  });
  const fail = (kind: "read" | "write") => (error: unknown) => {
    failures.push({ kind, code: (error as { code?: string }).code ?? String(error) });
  };
  const reader = async () => {
    while (!stop) {
      await router
        .table("patients")
        .get(seed.patients.id as string)
        .then(() => {
          reads++;
        }, fail("read"));
    }
  };
  const writer = async () => {
    let n = 0;
    while (!stop) {
      const id = randomUUID();
      const minute = String(n++ % 60).padStart(2, "0");
      await router
        .table("appointments")
        .insert({
          id,
          branch_id: seed.branches.id as string,
          room_id: seed.rooms.id as string,
          patient_id: seed.patients.id as string,
          doctor_id: seed.profiles.id as string,
          starts_at: `2025-05-05T09:${minute}:00-06:00`,
          ends_at: `2025-05-05T10:${minute}:00-06:00`,
          reason: loadTag(run),
          type: "follow_up",
        })
        .then(() => {
          writes.set(id, router.getStatus().mode);
        }, fail("write"));
    }
  };
  const workers = [reader(), reader(), writer()];
  try {
    const idsIn = (mode: ConnectionMode) => [...writes].filter(([, m]) => m === mode).map(([id]) => id);
    await during({ writesIn: (mode) => idsIn(mode).length, idsIn });
  } finally {
    stop = true;
    await Promise.all(workers);
    watch.unsubscribe();
  }
  return { failures, writes, reads, modes };
}
