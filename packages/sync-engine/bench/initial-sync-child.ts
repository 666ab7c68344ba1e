/**
 * One initial sync cloud → clinic in a process of its own, so its peak RSS is the engine's alone.
 * Prints `{"ms": …, "maxRssMb": …, "cpuSeconds": …, "lastError": …}` (cpuSeconds: the sync's,
 * user and system) and exits. Env: CV_CLOUD_URL, CV_CLOUD_KEY, CV_CLINIC_URL,
 * CV_SNAPSHOT_PAGE_SIZE (default: the engine's). The bench bundles it first, so it runs as plain
 * JavaScript like the daemon, not under a TypeScript loader (+40 MB).
 */
import { createPostgresPeer, createSupabasePeer, createSyncEngine } from "../src/index.js";

const env = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

const local = createPostgresPeer({ url: env("CV_CLINIC_URL"), timeoutMs: 120_000 });
const remote = createSupabasePeer({ url: env("CV_CLOUD_URL"), key: env("CV_CLOUD_KEY"), timeoutMs: 120_000 });
const started = performance.now();
const cpuBefore = process.cpuUsage();
const pageSize = process.env.CV_SNAPSHOT_PAGE_SIZE;
const engine = createSyncEngine({
  local,
  remote,
  intervalMs: 3_600_000,
  ...(pageSize !== undefined && { snapshotPageSize: Number(pageSize) }),
});
const status = await engine.syncNow();
const ms = performance.now() - started;
const cpu = process.cpuUsage(cpuBefore);
const cpuSeconds = (cpu.user + cpu.system) / 1e6;
await engine.stop();
await Promise.all([local.close(), remote.close()]);
const maxRssMb = process.resourceUsage().maxRSS / 1024;
process.stdout.write(`${JSON.stringify({ ms, maxRssMb, cpuSeconds, lastError: status.lastError })}\n`);
