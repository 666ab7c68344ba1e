import { randomBytes, timingSafeEqual } from "node:crypto";
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
  /** 127.0.0.1 only. */
  port?: number;
  /**
   * What every call must carry (`Authorization: Bearer <secret>`): the UI's alone, as Tauri keeps
   * its IPC to its own webview. Default: a new random one per launch. A shell that starts this
   * backend as its sidecar passes its own and hands it to its webview; a browser gets it in the
   * fragment of {@link BackendServer.appUrl}, which never reaches a server or a log.
   */
  secret?: string;
  /** Folder of the built UI (`index.html` + assets); without it only the API is served. */
  uiDir?: string;
  routes?: ExtraRoutes;
}

export interface BackendServer {
  readonly url: string;
  readonly port: number;
  /** The secret calls must carry. */
  readonly secret: string;
  /** The UI's address with the secret in its fragment (`#acceso=…`), for a browser. */
  readonly appUrl: string;
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

/** A refusal with its HTTP status, Spanish message and code, raised before any command runs. */
class Refused extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body ?? null);
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" });
  res.end(text);
}

/**
 * The JSON body of a POST. Every POST, an empty one included, must say it is JSON: a web page can
 * send text/plain (or a form) without a CORS preflight, never application/json. Media types are
 * case-insensitive (RFC 9110 §8.3.1).
 */
async function readJson(req: IncomingMessage): Promise<unknown> {
  const type = (req.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase();
  if (type !== "application/json") {
    throw new Refused(
      415,
      "invalid_input",
      "El cuerpo de la petición debe ser JSON (content-type: application/json).",
    );
  }
  const declared = Number(req.headers["content-length"] ?? 0);
  const tooLarge = () => new Refused(413, "invalid_input", "La petición es demasiado grande (máximo 1 MB).");
  if (declared > MAX_BODY) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw tooLarge();
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString("utf8");
  if (text.trim() === "") return {};
  try {
    return JSON.parse(text);
  } catch {
    throw new Refused(400, "invalid_input", "El cuerpo de la petición no es JSON válido.");
  }
}

/**
 * The path as sent, never normalised: `/invoke/../demo/internet/off` must not become another
 * route. A dot segment, an encoded one, a backslash or a malformed escape is refused (400).
 */
function requestPath(req: IncomingMessage): string {
  const raw = (req.url ?? "/").split("?")[0] ?? "/";
  let decoded: string;
  try {
    decoded = decodeURIComponent(raw);
  } catch {
    throw new Refused(400, "invalid_input", "Ruta inválida.");
  }
  if (
    !raw.startsWith("/") ||
    decoded.includes("\\") ||
    decoded.split("/").some((s) => s === "." || s === "..")
  ) {
    throw new Refused(400, "invalid_input", "Ruta inválida.");
  }
  return raw;
}

/** Whether the call carries this launch's secret (compared in constant time). */
function carriesSecret(req: IncomingMessage, secret: Buffer): boolean {
  const given = /^Bearer (\S+)$/i.exec(req.headers.authorization ?? "")?.[1];
  if (given === undefined) return false;
  const bytes = Buffer.from(given);
  return bytes.length === secret.length && timingSafeEqual(bytes, secret);
}

/** A browser's `Origin` must be this backend's own page (a foreign page's fetch says where it is from). */
function ownOrigin(req: IncomingMessage, port: number): boolean {
  const origin = req.headers.origin;
  return (
    origin === undefined || origin === `http://127.0.0.1:${port}` || origin === `http://localhost:${port}`
  );
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
  options: BackendServerOptions & { secret: string; port: number },
  metrics: Registry,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  if (!trustedHost(req)) return send(res, 403, { code: "unauthorized", message: "Origen no permitido." });
  const pathname = requestPath(req);
  // The UI's own files are public (the bundle holds no data); everything else is the app's alone.
  const isUi =
    req.method === "GET" && options.uiDir !== undefined && !/^\/(invoke|demo|metrics)(\/|$)/.test(pathname);
  if (isUi) return serveFile(res, options.uiDir as string, pathname);
  if (!ownOrigin(req, options.port)) {
    return send(res, 403, { code: "unauthorized", message: "Origen no permitido." });
  }
  if (!carriesSecret(req, Buffer.from(options.secret))) {
    return send(res, 401, {
      code: "unauthorized",
      message: "Este servicio solo responde a la aplicación CentroVision de este equipo.",
    });
  }
  const invoke = /^\/invoke\/([a-z_]+)$/.exec(pathname);
  if (invoke?.[1] !== undefined) {
    if (req.method !== "POST") return send(res, 405, { code: "invalid_input", message: "Use POST." });
    const args = await readJson(req);
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
    if (req.method === "POST") await readJson(req);
    try {
      return send(res, 200, await route());
    } catch (error) {
      const failure = toInvokeFailure(error);
      return send(res, STATUS_OF_CODE[failure.code] ?? 500, failure);
    }
  }
  send(res, 404, { code: "not_found", message: "No encontrado." });
}

/**
 * Serves `POST /invoke/<command>` (JSON in, JSON out, like Tauri's `invoke`), `GET /metrics` (the
 * router's counters, Prometheus text) and the UI, on 127.0.0.1. Every call but the UI's files must
 * carry the launch's secret and, from a browser, come from this backend's own page.
 */
export async function startBackendServer(options: BackendServerOptions): Promise<BackendServer> {
  const sockets = new Set<import("node:net").Socket>();
  const metrics = createRouterMetrics(options.context.router);
  const secret = options.secret ?? randomBytes(32).toString("base64url");
  let port = 0;
  const server: Server = createServer((req, res) => {
    handle({ ...options, secret, port }, metrics, req, res).catch((error: unknown) => {
      if (error instanceof Refused) {
        // An unread body would be left on a kept-alive socket: close it after this answer.
        res.setHeader("connection", "close");
        return send(res, error.status, { code: error.code, message: error.message });
      }
      send(res, 500, toInvokeFailure(undefined));
    });
  });
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, "127.0.0.1", () => resolve());
  });
  port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    secret,
    appUrl: `http://127.0.0.1:${port}/#acceso=${secret}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
