import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { CvError } from "@centrovision/core";
import { type DaemonStatus, isReady } from "./daemon-status.js";
import type { DaemonMetrics } from "./metrics.js";

export interface HttpEndpoints {
  readonly port: number;
  close(): Promise<void>;
}

/** The names this machine answers to on loopback, as a `Host` header carries them (port aside). */
const LOOPBACK_HOSTS = new Set(["127.0.0.1", "localhost", "::1"]);

/** The host part of a `Host` header, lower-cased, without its port or an IPv6 literal's brackets. */
function hostName(header: string): string {
  const value = header.trim().toLowerCase();
  const bracketed = /^\[([^\]]*)\](?::\d*)?$/.exec(value);
  return bracketed ? (bracketed[1] ?? "") : value.replace(/:\d*$/, "");
}

/**
 * Whether a request names this machine: its `Host` is a loopback name or address, or the listen
 * address. Loopback binding alone does not stop a web page: through DNS rebinding the user's
 * browser sends it here with `Host: <the page's own name>`, and could read /status and /metrics.
 */
function loopbackHost(header: string | undefined, listenHost: string): boolean {
  if (header === undefined || header.trim() === "") return false;
  const name = hostName(header);
  return LOOPBACK_HOSTS.has(name) || name === listenHost.toLowerCase();
}

/**
 * `/healthz` (the process answers), `/readyz` (the last cycle drained both ways: 200, else 503
 * with the reason), `/status` (JSON) and `/metrics` (Prometheus text). Bound to loopback only,
 * and answering only a request whose `Host` is loopback (403 otherwise, as the desktop does):
 * nothing here is authenticated, and nothing here carries row data.
 */
export async function startHttpEndpoints(
  host: string,
  port: number,
  status: () => DaemonStatus,
  metrics: DaemonMetrics,
): Promise<HttpEndpoints> {
  const server: Server = createServer((request, response) => {
    const send = (code: number, type: string, body: string) => {
      response.writeHead(code, { "content-type": type, "cache-control": "no-store" });
      response.end(body);
    };
    const json = (code: number, body: unknown) => send(code, "application/json", `${JSON.stringify(body)}\n`);
    if (!loopbackHost(request.headers.host, host)) {
      return json(403, {
        error:
          "refused: the Host header must be 127.0.0.1, localhost or [::1] (these endpoints answer this machine only; a web page reaching them through DNS rebinding names another host)",
      });
    }
    const path = new URL(request.url ?? "/", "http://localhost").pathname;
    if (request.method !== "GET" && request.method !== "HEAD") return json(405, { error: "use GET" });
    const current = status();
    switch (path) {
      case "/healthz":
        return json(current.phase === "stopped" ? 503 : 200, { ok: current.phase !== "stopped" });
      case "/readyz": {
        const ready = isReady(current);
        return json(ready ? 200 : 503, {
          ready,
          mode: current.mode,
          ...(!ready && {
            reason:
              current.blocked[0]?.message ??
              current.lastError?.message ??
              "no cycle has drained both directions yet",
          }),
        });
      }
      case "/status":
        return json(200, current);
      case "/metrics":
        metrics.registry.metrics().then(
          (text) => send(200, metrics.registry.contentType, text),
          () => json(500, { error: "metrics unavailable" }),
        );
        return;
      default:
        return json(404, { error: "not found: try /healthz, /readyz, /status or /metrics" });
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (error: NodeJS.ErrnoException) =>
      reject(
        new CvError(
          "invalid_config",
          `[sync-daemon] cannot listen on ${host}:${port} (${error.code ?? "error"}): choose another [http] port`,
          { cause: error },
        ),
      ),
    );
    server.listen(port, host, resolve);
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
