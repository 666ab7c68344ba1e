import { readFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { extname, join, normalize, sep } from "node:path";
import type { Registry } from "prom-client";
import { type CommandContext, runCommand, toInvokeFailure } from "./commands.js";
import { createRouterMetrics } from "./metrics.js";

/** An extra route (the demo's controls): `"POST /demo/internet/off"` → handler returning JSON. */
export type ExtraRoutes = Readonly<Record<string, () => Promise<unknown>>>;

export interface BackendServerOptions {
  context: CommandContext;
  /** 127.0.0.1 only: the commands carry patient data and have no other authentication. */
  port?: number;
  /** Folder of the built UI (`index.html` + assets); without it only the API is served. */
  uiDir?: string;
  routes?: ExtraRoutes;
}

export interface BackendServer {
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

const STATUS_OF_CODE: Record<string, number> = {
  invalid_input: 400,
  invalid_config: 500,
  not_found: 404,
  conflict: 409,
  constraint: 409,
  unauthorized: 403,
  unavailable: 503,
  timeout: 504,
  unknown: 500,
};

const MIME: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".json": "application/json",
};

const MAX_BODY = 1_000_000;

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body ?? null);
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" });
  res.end(text);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new SyntaxError("too large");
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString("utf8");
  if (text.trim() === "") return {};
  // A web page can POST text/plain without a CORS preflight; JSON content must say it is JSON.
  if (!/^application\/json\b/.test(req.headers["content-type"] ?? "")) throw new SyntaxError("not JSON");
  return JSON.parse(text);
}

/**
 * Only this PC's own pages may call: a Host other than 127.0.0.1/localhost is a DNS-rebinding
 * page trying to read patient data through the user's browser.
 */
function trustedHost(req: IncomingMessage): boolean {
  const host = (req.headers.host ?? "").replace(/:\d+$/, "");
  return host === "127.0.0.1" || host === "localhost";
}

async function serveFile(res: ServerResponse, uiDir: string, pathname: string): Promise<void> {
  const relative = normalize(decodeURIComponent(pathname)).replace(/^([/\\])+/, "");
  const file = join(uiDir, relative === "" ? "index.html" : relative);
  const inside = file.startsWith(uiDir.endsWith(sep) ? uiDir : uiDir + sep);
  const target = inside && extname(file) !== "" ? file : join(uiDir, "index.html");
  try {
    const body = await readFile(target);
    res.writeHead(200, { "content-type": MIME[extname(target)] ?? "application/octet-stream" });
    res.end(body);
  } catch {
    send(res, 404, { code: "not_found", message: "No encontrado." });
  }
}

async function handle(
  options: BackendServerOptions,
  metrics: Registry,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const { pathname } = new URL(req.url ?? "/", "http://127.0.0.1");
  if (!trustedHost(req)) return send(res, 403, { code: "unauthorized", message: "Origen no permitido." });
  const invoke = /^\/invoke\/([a-z_]+)$/.exec(pathname);
  if (invoke?.[1] !== undefined) {
    if (req.method !== "POST") return send(res, 405, { code: "invalid_input", message: "Use POST." });
    let args: unknown;
    try {
      args = await readJson(req);
    } catch {
      return send(res, 400, {
        code: "invalid_input",
        message: "El cuerpo de la petición debe ser JSON (content-type: application/json).",
      });
    }
    try {
      return send(res, 200, await runCommand(options.context, invoke[1], args));
    } catch (error) {
      const failure = toInvokeFailure(error);
      return send(res, STATUS_OF_CODE[failure.code] ?? 500, failure);
    }
  }
  if (req.method === "GET" && pathname === "/metrics") {
    res.writeHead(200, { "content-type": metrics.contentType, "cache-control": "no-store" });
    return void res.end(await metrics.metrics());
  }
  const route = options.routes?.[`${req.method} ${pathname}`];
  if (route !== undefined) {
    try {
      return send(res, 200, await route());
    } catch (error) {
      const failure = toInvokeFailure(error);
      return send(res, STATUS_OF_CODE[failure.code] ?? 500, failure);
    }
  }
  if (req.method === "GET" && options.uiDir !== undefined) return serveFile(res, options.uiDir, pathname);
  send(res, 404, { code: "not_found", message: "No encontrado." });
}

/** Serves `POST /invoke/<command>` (JSON in, JSON out, like Tauri's `invoke`), `GET /metrics` (the router's counters, Prometheus text) and the UI, on 127.0.0.1. */
export async function startBackendServer(options: BackendServerOptions): Promise<BackendServer> {
  const sockets = new Set<import("node:net").Socket>();
  const metrics = createRouterMetrics(options.context.router);
  const server: Server = createServer((req, res) => {
    handle(options, metrics, req, res).catch(() => send(res, 500, toInvokeFailure(undefined)));
  });
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
