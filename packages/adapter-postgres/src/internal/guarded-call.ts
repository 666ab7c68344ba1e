import { type CallOptions, CvError, isCvError, type TableName, withDeadline } from "@centrovision/core";
import { isConnectionFailure } from "../driver-errors/index.js";
import { type ErrorContext, toCvError } from "../postgres-errors.js";
import type { Generation, Pool } from "./pool.js";

export interface GuardOptions {
  readonly pool: Pool;
  readonly sourceId: string;
  readonly errors: Omit<ErrorContext, "table">;
  readonly isClosed: () => boolean;
}

export type GuardedCall = <R>(
  label: string,
  table: TableName | undefined,
  options: CallOptions | undefined,
  defaultTimeoutMs: number,
  work: (generation: Generation) => Promise<R>,
) => Promise<R>;

/**
 * Wraps every call on one pool: refuses after close, enforces the deadline outside the driver
 * (which has no per-query timeout and can wait forever on a half-open socket), replaces the pool
 * when the deadline fired or the connection broke, and translates whatever was thrown.
 *
 * A caller's own abort does not replace the pool: the statement may be healthy and merely
 * unwanted. A server-side `statement_timeout` (57014) does not either: the server answered.
 */
export function createGuardedCall({ pool, sourceId, errors, isClosed }: GuardOptions): GuardedCall {
  return async (label, table, options, defaultTimeoutMs, work) => {
    if (isClosed()) {
      throw new CvError("unavailable", `[adapter-postgres] source ${sourceId} is closed`, {
        ...(table !== undefined && { table }),
      });
    }
    const generation = pool.current();
    let signal: AbortSignal | undefined;
    try {
      return await withDeadline(`[adapter-postgres] ${label}`, options, defaultTimeoutMs, (callSignal) => {
        signal = callSignal;
        return work(generation);
      });
    } catch (error) {
      const deadline =
        signal?.aborted === true && isCvError(signal.reason, "timeout") && error === signal.reason;
      if (deadline || isConnectionFailure(error)) pool.discard(generation, deadline);
      throw toCvError(error, { ...errors, ...(table !== undefined && { table }) });
    }
  };
}
