import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { CvError } from "@centrovision/core";
import { type DaemonStatus, isReady } from "./daemon-status.js";
import type { DaemonMetrics } from "./metrics.js";

export interface HttpEndpoints {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * `/healthz` (the process answers), `/readyz` (the last cycle drained both ways: 200, else 503
 * with the reason), `/status` (JSON) and `/metrics` (Prometheus text). Bound to loopback only:
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
