import { isCvError } from "@centrovision/core";
import { measureNode } from "@centrovision/sync-engine";
import type { DaemonConfig } from "./config/load-config.js";
import type { DaemonStatus } from "./daemon-status.js";
import type { IdentityStatus } from "./identity-copy.js";
import { createPeers } from "./peers.js";

/** `status` output: the running daemon's `/status`, or what can be read from both nodes without it. */
export type StatusReport = (DaemonStatus & { readonly daemonRunning: true }) | StandaloneStatus;

export interface StandaloneStatus {
  readonly daemonRunning: false;
  readonly mode: "stopped";
  readonly node: string;
  readonly pendingUp: number | null;
  readonly pendingDown: number | null;
  readonly conflictsOpen: number | null;
  readonly clockSkewMs: number | null;
  readonly lastSuccessAt: null;
  readonly lagMs: null;
  /** Why a node could not be read, if one could not. */
  readonly errors: readonly {
    readonly node: "clinic" | "cloud";
    readonly code: string;
    readonly message: string;
  }[];
}

async function fromDaemon(config: DaemonConfig): Promise<DaemonStatus | undefined> {
  if (!config.http.enabled || config.http.port === 0) return undefined;
  const host = config.http.host.includes(":") ? `[${config.http.host}]` : config.http.host;
  try {
    const response = await fetch(`http://${host}:${config.http.port}/status`, {
      signal: AbortSignal.timeout(2_000),
    });
    if (!response.ok) return undefined;
    return (await response.json()) as DaemonStatus;
  } catch {
    return undefined;
  }
}

async function fromNodes(config: DaemonConfig): Promise<StandaloneStatus> {
  const { local, remote } = createPeers(config);
  const errors: { node: "clinic" | "cloud"; code: string; message: string }[] = [];
  const note = (node: "clinic" | "cloud") => (error: unknown) => {
    errors.push({
      node,
      code: isCvError(error) ? error.code : "unknown",
      message: isCvError(error) ? error.message : "unexpected error",
    });
    return undefined;
  };
  try {
    // Measured as the engine does (each node's offset by the midpoint of its own round trip), so
    // the skew reads the same with and without a running daemon.
    const [clinicNode, cloudNode] = await Promise.all([
      measureNode(local, Date.now).catch(note("clinic")),
      measureNode(remote, Date.now).catch(note("cloud")),
    ]);
    const [clinic, cloud] = [clinicNode?.info, cloudNode?.info];
    const [pendingUp, pendingDown] = await Promise.all([
      clinic && cloud ? local.pending(cloud.nodeId).catch(note("clinic")) : undefined,
      clinic && cloud ? remote.pending(clinic.nodeId).catch(note("cloud")) : undefined,
    ]);
    return {
      daemonRunning: false,
      mode: "stopped",
      node: clinic?.nodeName ?? config.nodeName,
      pendingUp: pendingUp ?? null,
      pendingDown: pendingDown ?? null,
      conflictsOpen: clinic?.openConflicts ?? null,
      clockSkewMs: clinicNode && cloudNode ? Math.round(cloudNode.offsetMs - clinicNode.offsetMs) : null,
      lastSuccessAt: null,
      lagMs: null,
      errors,
    };
  } finally {
    await Promise.all([local.close(), remote.close()]);
  }
}

/**
 * Whether `status` should exit 1: the running daemon cannot reach a node, fails, or is blocked;
 * without a daemon, a node could not be read.
 */
export function statusFailed(report: StatusReport): boolean {
  if (!report.daemonRunning) return report.errors.length > 0;
  return report.mode === "offline" || report.mode === "failing" || report.mode === "blocked";
}

/** Asks the running daemon (its `/status`); when none answers, reads both nodes directly. */
export async function readStatus(config: DaemonConfig): Promise<StatusReport> {
  const running = await fromDaemon(config);
  return running ? { ...running, daemonRunning: true } : fromNodes(config);
}

const orDash = (value: number | string | null | undefined, unit = "") =>
  value === null || value === undefined ? "-" : `${value}${unit}`;

/** One line: whether the clinic key is registered, when the disabled users were last copied, the audit seal. */
export function describeIdentity(identity: IdentityStatus): string {
  const key = identity.keyRegistered ? "clinic key registered" : "clinic key not registered";
  const copied =
    identity.disabledUsers === null
      ? "disabled users not copied yet"
      : `${identity.disabledUsers} disabled user(s) copied ${identity.lastCopiedAt}`;
  const sealed =
    identity.auditSealedAt === null
      ? "audit trail not sealed yet"
      : `${identity.auditSealed} audit event(s) sealed ${identity.auditSealedAt}, the cloud holds the chain up to #${identity.auditInCloud ?? "-"}`;
  const error = identity.lastError
    ? `; last error ${identity.lastError.code}: ${identity.lastError.message}`
    : "";
  return `${key}, ${copied}, ${sealed}${error}`;
}

export function formatStatus(report: StatusReport): string {
  const lines = [
    [
      "node",
      `${report.node} (${report.daemonRunning ? `daemon running, pid ${report.pid}` : "daemon not running"})`,
    ],
    ["mode", report.mode],
    ["last sync", orDash(report.lastSuccessAt)],
    ["lag", report.lagMs === null ? "-" : `${(report.lagMs / 1000).toFixed(1)} s`],
    ["pending", `up ${orDash(report.pendingUp)}, down ${orDash(report.pendingDown)}`],
    ["conflicts", `${orDash(report.conflictsOpen)} open`],
    ["clock skew", orDash(report.clockSkewMs, " ms")],
  ];
  if (report.daemonRunning) {
    lines.push(["identity", describeIdentity(report.identity)]);
    if (report.lastError) lines.push(["last error", `${report.lastError.code}: ${report.lastError.message}`]);
    for (const blocked of report.blocked) lines.push(["blocked", `${blocked.direction}: ${blocked.message}`]);
  } else {
    for (const error of report.errors) lines.push([error.node, `${error.code}: ${error.message}`]);
  }
  return lines.map(([label, value]) => `${(label ?? "").padEnd(11)} ${value}`).join("\n");
}
