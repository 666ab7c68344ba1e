import { createPostgresPeer, createSupabasePeer, type SyncPeer } from "@centrovision/sync-engine";
import { createCloudSession } from "./cloud-session.js";
import type { DaemonConfig } from "./config/load-config.js";

/**
 * The clinic server (local) and the cloud (remote) peers a config describes; the caller closes
 * them. The cloud is reached as the clinic server's node (its node credential), signed in on the
 * first call.
 */
export function createPeers(config: DaemonConfig): { local: SyncPeer; remote: SyncPeer } {
  const session = createCloudSession({
    url: config.cloud.url,
    anonKey: config.cloud.anonKey,
    email: config.cloud.nodeEmail,
    password: config.cloud.nodePassword,
  });
  const cloud = createSupabasePeer({
    url: config.cloud.url,
    client: session,
    timeoutMs: config.cloud.timeoutMs,
  });
  return {
    local: createPostgresPeer({ url: config.clinic.url, timeoutMs: config.clinic.timeoutMs }),
    remote: {
      ...cloud,
      async close() {
        await cloud.close();
        await session.close();
      },
    },
  };
}

/** What to do about a failure, for an IT person: appended to the error's own message. */
export function hintFor(code: string, message: string): string {
  if (code === "unauthorized" && /login was refused/.test(message)) {
    return "the clinic database refused the daemon's login: check [clinic] url (user) and password_file/password_env, or run `centrovision-sync init`";
  }
  if (code === "unauthorized" && /node credential|anon key/.test(message)) {
    return "the cloud refused the clinic server's node credential; `centrovision-sync doctor` checks it";
  }
  if (code === "unauthorized") {
    return "a node refused the daemon's credentials: check [cloud] anon_key, node_email and node_password_file, and that the clinic login is in role centrovision_sync";
  }
  if (code === "unavailable" || code === "timeout") {
    return "a node did not answer: the clinic server keeps serving the PCs; run `centrovision-sync doctor` if it lasts";
  }
  return "run `centrovision-sync doctor`";
}
