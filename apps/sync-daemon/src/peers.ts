import { createPostgresPeer, createSupabasePeer, type SyncPeer } from "@centrovision/sync-engine";
import type { DaemonConfig } from "./config/load-config.js";

/** The clinic server (local) and the cloud (remote) peers a config describes; the caller closes them. */
export function createPeers(config: DaemonConfig): { local: SyncPeer; remote: SyncPeer } {
  return {
    local: createPostgresPeer({ url: config.clinic.url, timeoutMs: config.clinic.timeoutMs }),
    remote: createSupabasePeer({
      url: config.cloud.url,
      key: config.cloud.serviceRoleKey,
      timeoutMs: config.cloud.timeoutMs,
    }),
  };
}

/** What to do about a failure, for an IT person: appended to the error's own message. */
export function hintFor(code: string, message: string): string {
  if (code === "unauthorized" && /login was refused/.test(message)) {
    return "the clinic database refused the daemon's login: check [clinic] url (user) and password_file/password_env, or run `centrovision-sync init`";
  }
  if (code === "unauthorized") {
    return "a node refused the daemon's credentials: check [cloud] service_role_key_file and that the clinic login is in role centrovision_sync";
  }
  if (code === "unavailable" || code === "timeout") {
    return "a node did not answer: the clinic server keeps serving the PCs; run `centrovision-sync doctor` if it lasts";
  }
  return "run `centrovision-sync doctor`";
}
