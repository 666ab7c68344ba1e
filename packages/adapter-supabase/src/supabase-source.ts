import {
  type Capabilities,
  CvError,
  type DataSource,
  repositoriesOf,
  type TableName,
  withDeadline,
} from "@centrovision/core";
import { createDefaultClient, type SupabaseClientLike } from "./internal/client.js";
import { probeHealth } from "./internal/probe.js";
import { createSupabaseDriver, type Run, type Send } from "./internal/repository.js";
import { resolveSupabaseConfig, type SupabaseConfig, type SupabaseConfigInput } from "./supabase-config.js";
import { type ErrorContext, fromPostgrest, fromThrown } from "./supabase-errors.js";

/** What the cloud tier declares. The change feed belongs to the sync engine (RPC), not this source. */
export const SUPABASE_CAPABILITIES: Capabilities = Object.freeze({
  transactions: true,
  changeFeed: false,
  durable: true,
  rowLevelSecurity: true,
});

/** The injected client, resolved once: a factory is called on the first call that needs it. */
function clientResolver(config: SupabaseConfig): () => SupabaseClientLike {
  let client: SupabaseClientLike | undefined;
  return () => {
    if (client !== undefined) return client;
    const input = config.client;
    // The public type is supabase-js's own `from()`; see FilterBuilderLike for why it is cast.
    const made =
      input === undefined
        ? createDefaultClient({ url: config.url, key: config.key, accessToken: config.accessToken })
        : typeof input === "function"
          ? input()
          : input;
    client = made as unknown as SupabaseClientLike;
    return client;
  };
}

/**
 * A `DataSource` over Supabase through supabase-js (PostgREST).
 *
 * - Creating the source never connects and never fails on a down cloud.
 * - Every call has a deadline (`callTimeoutMs`, or `CallOptions.timeoutMs`) enforced outside
 *   supabase-js, which has none and can wait on its auth lock before fetching; the same signal is
 *   passed to the request (`.abortSignal`), so an expired call also frees its socket. postgrest-js
 *   retries are off per request (`.retry(false)`; `createClient`'s `db.retry` is not passed through
 *   in 2.109): a refused cloud fails in milliseconds, not after ~7 s of back-off. Nothing retries.
 * - A blackholed cloud rejects with `timeout` at the deadline; a refused or 5xx one with
 *   `unavailable`; a cloud that refuses the key or session with `unauthorized` (not down).
 *   The outcome of a write that failed with `timeout`/`unavailable` is unknown.
 * - Rows are validated with the table's zod schema on the way in and on the way out, and arrive
 *   in core's canonical form (UTC millisecond timestamps).
 * - `probe()` calls `rpc/cv_health` with plain fetch and the key only (see internal/probe.ts).
 * - `close()` is idempotent; later calls reject with `unavailable`. Calls in flight finish or hit
 *   their deadline; the adapter holds no sockets of its own (fetch's pool is process-wide).
 *
 * @throws CvError `invalid_config` listing every problem of `config`.
 */
export function createSupabaseSource(input: SupabaseConfigInput): DataSource {
  const config = resolveSupabaseConfig(input);
  const base = config.url.endsWith("/") ? config.url : `${config.url}/`;
  const host = new URL(base).host;
  const clientOf = clientResolver(config);
  let closed = false;

  const refuseIfClosed = (table?: TableName) => {
    if (closed) {
      throw new CvError("unavailable", `[adapter-supabase] source ${config.id} is closed`, {
        ...(table !== undefined && { table }),
      });
    }
  };

  const run: Run = async (label, table, options, work) => {
    refuseIfClosed(table);
    const context: ErrorContext = { host, table };
    try {
      return await withDeadline(`[adapter-supabase] ${label}`, options, config.callTimeoutMs, (signal) => {
        const send: Send = async (build, shape) => {
          const query = build(clientOf().from(table)).abortSignal(signal).retry(false);
          const result = await (shape === "single"
            ? query.single()
            : shape === "maybeSingle"
              ? query.maybeSingle()
              : query);
          if (result.error) throw fromPostgrest(result.error, result.status, context);
          return result.data;
        };
        return work(send);
      });
    } catch (error) {
      throw fromThrown(error, context);
    }
  };

  const target = {
    endpoint: new URL("rest/v1/rpc/cv_health", base).href,
    key: config.key,
    context: { host },
  };

  return {
    id: config.id,
    kind: "supabase",
    capabilities: SUPABASE_CAPABILITIES,
    async probe(options) {
      refuseIfClosed();
      return withDeadline("[adapter-supabase] probe", options, config.probeTimeoutMs, (signal) =>
        probeHealth(target, signal),
      );
    },
    table: repositoriesOf(createSupabaseDriver(run, config.pageSize)),
    async close() {
      closed = true;
    },
  };
}
