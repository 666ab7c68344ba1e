/**
 * Private-channel authorization as Supabase Realtime does it (supabase/realtime
 * `lib/realtime/tenants/authorization.ex`): in one transaction, as the database superuser, insert
 * a probe row into `realtime.messages` for the topic, switch to the token's role with its claims,
 * the topic (`realtime.topic()`) and the upgrade request's `x-` headers, and select the row back;
 * the user may read the channel if row-level security lets the row through. The transaction is
 * rolled back, so the probe is never stored nor broadcast.
 */
import { randomUUID } from "node:crypto";
import postgres, { type Sql } from "postgres";

export interface AuthorizationContext {
  /** The channel's topic without `realtime:`, what `realtime.topic()` returns to policies. */
  readonly topic: string;
  readonly claims: Readonly<Record<string, unknown>>;
  /** The `x-` headers of the WebSocket upgrade, as `request.headers`. */
  readonly headers: Readonly<Record<string, string>>;
}

/** Why a read was refused: the policies said no (or failed), or the check could not run. */
export type ReadRefusal = "unauthorized" | "missing_partition" | "unavailable";

/** Realtime's `set_conn_config`. */
const SET_CONFIG_SQL =
  "select set_config('role', $1, true), set_config('realtime.topic', $2, true), " +
  "set_config('request.jwt.claims', $3, true), set_config('request.jwt.claim.sub', $4, true), " +
  "set_config('request.jwt.claim.role', $5, true), set_config('request.headers', $6, true)";

const ROLLBACK = Symbol("rollback");

/** Null when the policies on `realtime.messages` let the token read Broadcast on the topic. */
export async function refuseBroadcastRead(
  sql: Sql,
  context: AuthorizationContext,
): Promise<ReadRefusal | null> {
  const { topic, claims } = context;
  const role = String(claims.role);
  const sub = typeof claims.sub === "string" ? claims.sub : null;
  const id = randomUUID();
  let readable = false;
  try {
    await sql.begin(async (tx) => {
      await tx`insert into realtime.messages (id, topic, extension) values (${id}, ${topic}, 'broadcast')`;
      await tx.unsafe(SET_CONFIG_SQL, [
        role,
        topic,
        JSON.stringify(claims),
        sub,
        role,
        JSON.stringify(context.headers),
      ] as string[]);
      const rows = await tx`select id from realtime.messages where id = ${id}`;
      readable = rows.length > 0;
      throw ROLLBACK;
    });
  } catch (error) {
    if (error !== ROLLBACK) return refusalFor(error);
  }
  return readable ? null : "unauthorized";
}

/** Realtime's `handle_policies_result`: an error raised by a policy reads as unauthorized. */
function refusalFor(error: unknown): ReadRefusal {
  if (!(error instanceof postgres.PostgresError)) return "unavailable";
  return error.code === "23514" && error.table_name === "messages" ? "missing_partition" : "unauthorized";
}

const UNREACHABLE = "Realtime was unable to connect to the project database";

/** The join's error reason, `Code: message`, as Realtime's channel replies it. */
export function readJoinRefusal(refusal: ReadRefusal, topic: string): string {
  switch (refusal) {
    case "unauthorized":
      return `Unauthorized: You do not have permissions to read from this Channel topic: ${topic}`;
    case "missing_partition":
      return "MissingPartition: Realtime was unable to find the expected messages partition";
    case "unavailable":
      return `UnableToConnectToProject: ${UNREACHABLE}`;
  }
}

/** The `system` message a joined channel is closed with when a refreshed token may not read. */
export function readShutdownMessage(refusal: ReadRefusal, topic: string): string {
  return refusal === "unauthorized"
    ? `You do not have permissions to read from this Channel topic: ${topic}`
    : UNREACHABLE;
}
