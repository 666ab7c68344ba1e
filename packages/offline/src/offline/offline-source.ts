import type { DataSource } from "@centrovision/core";
import type { OfflineStore } from "./offline-store.js";
import { recordOfflineChanges } from "./outbox.js";

/**
 * The router's last tier: reads come from the local file (pending writes included, since they
 * are in its rows), and every write is recorded in the outbox in the same durable batch, so a
 * write the promise acknowledged is on disk with its outbox entry (fsync'd) or did not happen.
 */
export function createOfflineSource(store: OfflineStore, id: string, now: () => Date): DataSource {
  return {
    id,
    kind: store.kind,
    capabilities: store.capabilities,
    probe: (o) => store.probe(o),
    table: store.tablesWith((batch) => recordOfflineChanges(batch, now().toISOString())),
    close: () => store.close(),
  };
}
