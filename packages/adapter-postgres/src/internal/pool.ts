import postgres from "postgres";
import type { ResolvedPostgresConfig } from "../postgres-config.js";
import { clientOptions, type Sql } from "./client-options.js";

/** One `postgres` client for one clinic session; replaced as a whole when it goes bad or the session changes. */
export interface Generation {
  readonly sql: Sql;
  readonly session: string | undefined;
}

export interface Pool {
  /**
   * The live generation; created on first use (creating a client does not connect). A pool with
   * `config.options.session` replaces it when the session changed, letting its calls finish.
   */
  current(): Generation;
  /**
   * Replaces `stale` if it is still the live generation and closes it in the background; new
   * calls get a fresh client at once.
   *
   * `hard` (a call missed its deadline): its sockets may be half-open, and calls would queue
   * behind them for the ~15 min Linux keeps retransmitting; the calls still running on `stale`
   * fail at once with `unavailable` instead of each waiting out its own deadline on the same dead
   * link. Otherwise (a connection broke) the others may be healthy and get up to `callTimeoutMs`
   * to finish; the replacement avoids porsager/postgres#1130, where a query sent between a
   * socket's error and its close never settles.
   */
  discard(stale: Generation, hard: boolean): void;
  /** Ends the live generation, letting running statements finish for up to `graceMs`. */
  end(graceMs: number): Promise<void>;
}

export function createPool(config: ResolvedPostgresConfig, role: "pool" | "probe"): Pool {
  const graceSec = config.options.callTimeoutMs / 1000;
  const sessionOf = role === "pool" ? config.options.session : undefined;
  let live: Generation | undefined;
  return {
    current() {
      const session = sessionOf?.();
      if (live !== undefined && live.session !== session) {
        // Another person, or a renewed session. The old client ends a macrotask later: a call
        // that took it in this tick has not handed its query to a connection yet, and an ended
        // client would refuse it as if the server were gone.
        const stale = live;
        live = undefined;
        setImmediate(() => stale.sql.end({ timeout: graceSec }).catch(() => {}));
      }
      live ??= { sql: postgres(clientOptions(config, role, session)) as unknown as Sql, session };
      return live;
    },
    discard(stale, hard) {
      if (live !== stale) return;
      live = undefined;
      stale.sql.end({ timeout: hard ? 0 : graceSec }).catch(() => {});
    },
    async end(graceMs) {
      const last = live;
      live = undefined;
      await last?.sql.end({ timeout: graceMs / 1000 }).catch(() => {});
    },
  };
}
