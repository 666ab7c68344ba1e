// The fleet bench's cloud, in a process of its own so that its CPU time is its own: a local
// Supabase (the testkit's gateway: REST, Auth, Realtime) on its own PostgreSQL, which keeps commit
// timestamps (the bench reads when a row became visible). It counts what the gateway answered, per
// caller (the token's sub: each clinic's node credential is its own user), and the Realtime
// connections' bytes, through the gateway's diagnostics channels (packages/testkit/src/supabase/
// gateway-stats.ts). Started by fleet.bench.mjs with an IPC channel: it sends
// `{ type: "ready", … }`, answers `{ type: "counts" }` with the counts so far, and stops on
// `{ type: "stop" }`, on SIGTERM, or when the bench goes away.
import { subscribe } from "node:diagnostics_channel";
import { SUPABASE_SUPERUSER, startLocalSupabase, startPostgres } from "@centrovision/testkit";

/** The names gateway-stats.ts publishes under (GATEWAY_REQUEST_CHANNEL, GATEWAY_UPGRADE_CHANNEL). */
const REQUEST_CHANNEL = "cv-local-supabase:request";
const UPGRADE_CHANNEL = "cv-local-supabase:upgrade";

/** Per caller: requests, bytes both ways, and the same per path. */
const callers = new Map();
const zero = () => ({ requests: 0, bytesIn: 0, bytesOut: 0 });
const add = (counts, bytesIn, bytesOut) => {
  counts.requests += 1;
  counts.bytesIn += bytesIn;
  counts.bytesOut += bytesOut;
};
/** Every Realtime connection's socket, open or closed (a closed one keeps its totals). */
const sockets = [];

subscribe(REQUEST_CHANNEL, ({ path, caller, bytesIn, bytesOut }) => {
  const key = caller ?? "none";
  if (!callers.has(key)) callers.set(key, { ...zero(), paths: {} });
  const counts = callers.get(key);
  counts.paths[path] ??= zero();
  add(counts, bytesIn, bytesOut);
  add(counts.paths[path], bytesIn, bytesOut);
});
subscribe(UPGRADE_CHANNEL, ({ socket }) => sockets.push(socket));

function counts() {
  return {
    callers: Object.fromEntries(callers),
    realtime: {
      connections: sockets.length,
      open: sockets.filter((socket) => !socket.destroyed).length,
      bytesIn: sockets.reduce((sum, socket) => sum + socket.bytesRead, 0),
      bytesOut: sockets.reduce((sum, socket) => sum + socket.bytesWritten, 0),
    },
  };
}

let server;
let stack;
let stopping;
const stop = (code = 0) => {
  stopping ??= (async () => {
    await stack?.stop();
    await server?.stop();
    process.exit(code);
  })();
  return stopping;
};
process.on("SIGTERM", () => stop());
process.on("SIGINT", () => stop());
process.on("disconnect", () => stop());
process.on("message", (message) => {
  if (message?.type === "counts") process.send?.({ type: "counts", ...counts() });
  if (message?.type === "stop") void stop();
});

try {
  server = await startPostgres({
    superuser: SUPABASE_SUPERUSER,
    settings: { track_commit_timestamp: "on" },
  });
  stack = await startLocalSupabase({ postgres: server, log: () => {} });
} catch (error) {
  process.stderr.write(`[fleet-cloud] failed to start: ${error instanceof Error ? error.message : error}\n`);
  await stop(1);
}
if (stopping === undefined) {
  const { url, anonKey, serviceRoleKey, dbUrl } = stack;
  process.send?.({ type: "ready", url, anonKey, serviceRoleKey, dbUrl, postgresPort: server.port });
}
