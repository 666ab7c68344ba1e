/**
 * The sync engine as a separate process, to be killed with SIGKILL at a chosen step. Reads its
 * peers from CV_CLOUD_URL, CV_CLOUD_KEY and CV_CLINIC_URL, cycles back to back and prints one JSON
 * line per progress event (`{"progress": …}`) and per finished cycle (`{"status": …}`).
 */
import { createPostgresPeer, createSupabasePeer, createSyncEngine } from "../../src/index.js";

const env = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

const engine = createSyncEngine({
  local: createPostgresPeer({ url: env("CV_CLINIC_URL"), timeoutMs: 20_000 }),
  remote: createSupabasePeer({ url: env("CV_CLOUD_URL"), key: env("CV_CLOUD_KEY"), timeoutMs: 20_000 }),
  intervalMs: 50,
  minBackoffMs: 50,
  maxBackoffMs: 200,
  pageSize: Number(process.env.CV_PAGE_SIZE ?? 1_000),
  snapshotPageSize: Number(process.env.CV_SNAPSHOT_PAGE_SIZE ?? 2_000),
});

const print = (line: object) => process.stdout.write(`${JSON.stringify(line)}\n`);
engine.progress$.subscribe((progress) => print({ progress }));
let last = "";
engine.status$.subscribe((status) => {
  if (status.phase !== "idle" && status.phase !== "blocked") return;
  const line = JSON.stringify({ status });
  if (line !== last) process.stdout.write(`${line}\n`);
  last = line;
});
