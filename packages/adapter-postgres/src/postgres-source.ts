import { type Capabilities, type DataSource, type ProbeResult, repositoriesOf } from "@centrovision/core";
import { createGuardedCall } from "./internal/guarded-call.js";
import { createPool } from "./internal/pool.js";
import { createPostgresDriver, type Run } from "./internal/repository.js";
import { type PostgresConfigInput, resolvePostgresConfig } from "./postgres-config.js";

/** What the clinic server tier declares. The change feed arrives with the sync engine. */
export const POSTGRES_CAPABILITIES: Capabilities = Object.freeze({
  transactions: true,
  changeFeed: false,
  durable: true,
  rowLevelSecurity: false,
});

/**
 * A `DataSource` over a PostgreSQL server (the clinic server), through `postgres` (porsager) and
 * Kysely.
 *
 * - Creating the source never connects and never fails on a down server: connections open on
 *   first use, so a PC can start while the server is unreachable and use it when it comes back.
 * - Every call has a deadline (`callTimeoutMs`, or `CallOptions.timeoutMs`) enforced outside the
 *   driver; the driver never retries. A call that misses its deadline rejects with `timeout` and
 *   the pool is replaced (its sockets may be half-open), so the next call after the link returns
 *   gets a fresh connection instead of queueing behind dead ones. A broken connection
 *   (reset, server restart) rejects the call in flight with `unavailable` — its outcome is
 *   unknown, and it is not retried — and the next call reconnects.
 * - `probe()` runs `select 1` on its own single connection, so a busy pool does not make the
 *   server look down, and a dead probe connection does not cost the pool.
 * - `close()` lets statements in flight finish up to `callTimeoutMs`; later calls reject with
 *   `unavailable`.
 *
 * @throws CvError `invalid_config` listing every problem of `config` (nothing is opened then).
 */
export function createPostgresSource(config: PostgresConfigInput): DataSource {
  const resolved = resolvePostgresConfig(config);
  const { options, connection } = resolved;
  const errors = {
    label: connection.label,
    user: connection.user,
    connectTimeoutMs: options.connectTimeoutMs,
    statementTimeoutMs: options.statementTimeoutMs,
  };
  let closing: Promise<void> | undefined;
  const isClosed = () => closing !== undefined;
  const pool = createPool(resolved, "pool");
  const probePool = createPool(resolved, "probe");
  const call = createGuardedCall({ pool, sourceId: options.id, errors, isClosed });
  const probeCall = createGuardedCall({ pool: probePool, sourceId: options.id, errors, isClosed });

  const run: Run = (label, table, callOptions, work) =>
    call(label, table, callOptions, options.callTimeoutMs, work);

  return {
    id: options.id,
    kind: "postgres",
    capabilities: POSTGRES_CAPABILITIES,
    probe: (callOptions) =>
      probeCall(
        "probe",
        undefined,
        callOptions,
        options.probeTimeoutMs,
        async ({ sql }): Promise<ProbeResult> => {
          const started = performance.now();
          await sql`select 1`;
          return { latencyMs: performance.now() - started };
        },
      ),
    table: repositoriesOf(createPostgresDriver(run)),
    close() {
      closing ??= Promise.all([pool.end(options.callTimeoutMs), probePool.end(options.callTimeoutMs)]).then(
        () => {},
      );
      return closing;
    },
  };
}
