import {
  type CallOptions,
  CvError,
  createMemorySource,
  type DataSource,
  type MemorySource,
  type Repository,
  type TableName,
  withDeadline,
} from "../../src/index.js";

export type Fault = "none" | "refuse" | "blackhole" | "unauthorized";

/**
 * A memory source behind a switchable fault, the way a tier looks through a
 * dead link: `refuse` fails at once with `unavailable`, `blackhole` never
 * answers (the call's own deadline ends it), `unauthorized` answers with a
 * rejected key. Counts calls per tier.
 */
export interface FaultySource extends DataSource {
  fault: Fault;
  /** The next this many `get` calls fail with `unavailable` (a lookup lost on a flaky link); probes pass. */
  failGets: number;
  /** Time every table call takes before it is served (a slow but healthy link); probes are not delayed. */
  latencyMs: number;
  readonly inner: MemorySource;
  /** Table calls, not counting probes. */
  calls: number;
}

export function createFaultySource(id: string): FaultySource {
  const inner = createMemorySource({ id });
  const gate = async <T>(
    options: CallOptions | undefined,
    work: () => Promise<T>,
    probe = false,
  ): Promise<T> => {
    if (!probe) source.calls++;
    if (source.fault === "refuse") throw new CvError("unavailable", `[test] ${id} refused the connection`);
    if (source.fault === "unauthorized")
      throw new CvError("unauthorized", `[test] ${id} rejected the API key`);
    return withDeadline(`[test] ${id}`, options, 5_000, async (signal) => {
      if (source.fault === "blackhole") {
        await new Promise((_, reject) => signal.addEventListener("abort", () => reject(signal.reason)));
      }
      if (!probe && source.latencyMs > 0)
        await new Promise((resolve) => setTimeout(resolve, source.latencyMs));
      return work();
    });
  };
  const source: FaultySource = {
    id,
    kind: "memory",
    capabilities: inner.capabilities,
    fault: "none",
    failGets: 0,
    latencyMs: 0,
    inner,
    calls: 0,
    probe: (o) => gate(o, () => inner.probe(), true),
    table<T extends TableName>(name: T): Repository<T> {
      const repo = inner.table(name);
      return {
        table: name,
        get: (id, o) => {
          if (source.failGets <= 0) return gate(o, () => repo.get(id));
          source.failGets--;
          return Promise.reject(new CvError("unavailable", `[test] ${source.id} lost the lookup`));
        },
        list: (q, o) => gate(o, () => repo.list(q)),
        insert: (row, o) => gate(o, () => repo.insert(row)),
        upsert: (row, o) =>
          gate(o, () =>
            repo.upsert(row, { ...(o?.expectedVersion && { expectedVersion: o.expectedVersion }) }),
          ),
        upsertMany: (rows, o) => gate(o, () => repo.upsertMany(rows)),
        update: (id, patch, o) =>
          gate(o, () =>
            repo.update(id, patch, { ...(o?.expectedVersion && { expectedVersion: o.expectedVersion }) }),
          ),
        delete: (id, o) =>
          gate(o, () =>
            repo.delete(id, { ...(o?.expectedVersion && { expectedVersion: o.expectedVersion }) }),
          ),
      };
    },
    close: () => inner.close(),
  };
  return source;
}
