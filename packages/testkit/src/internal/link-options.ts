import type { LinkMode, LinkTarget } from "../link.js";

const fail = (message: string): never => {
  throw new TypeError(`[testkit] ${message}`);
};

function checkPort(port: number, what: string): number {
  if (!Number.isInteger(port) || port < 1 || port > 65_535)
    fail(`${what} must be a port 1-65535, got ${port}`);
  return port;
}

/** `undefined` or `0` means "any free port". */
export function parseListenPort(port: number | undefined): number {
  return port === undefined || port === 0 ? 0 : checkPort(port, "listenPort");
}

/** Accepts `{ host, port }`, `"host:port"` or `"[v6]:port"`. */
export function parseTarget(target: LinkTarget): { host: string; port: number } {
  if (typeof target !== "string") {
    if (!target.host) fail("link target needs a host");
    return { host: target.host, port: checkPort(target.port, "link target port") };
  }
  const colon = target.lastIndexOf(":");
  const host = target.slice(0, colon).replace(/^\[(.*)\]$/, "$1");
  const port = target.slice(colon + 1);
  if (colon <= 0 || !/^\d+$/.test(port))
    fail(`link target must look like "host:port", got ${JSON.stringify(target)}`);
  return { host, port: checkPort(Number(port), "link target port") };
}

/**
 * Returns a copy of `mode` that is validated, frozen and has its defaults filled in, so
 * `link.mode` reports exactly what the link does.
 */
export function normalizeMode(mode: LinkMode): LinkMode {
  switch (mode.kind) {
    case "pass":
    case "refuse":
    case "blackhole":
      return Object.freeze({ kind: mode.kind });
    case "latency":
      if (!Number.isFinite(mode.ms) || mode.ms < 0)
        fail(`latency ms must be a finite number >= 0, got ${mode.ms}`);
      return Object.freeze({ kind: "latency", ms: mode.ms });
    case "flap": {
      const down = mode.down ?? "blackhole";
      if (!Number.isFinite(mode.periodMs) || mode.periodMs <= 0) {
        fail(`flap periodMs must be a finite number > 0, got ${mode.periodMs}`);
      }
      if (down !== "blackhole" && down !== "refuse")
        fail(`flap down must be "blackhole" or "refuse", got ${down}`);
      return Object.freeze({ kind: "flap", periodMs: mode.periodMs, down });
    }
    default:
      return fail(`unknown link mode ${JSON.stringify(mode)}`);
  }
}

/**
 * Points `baseUrl` (http://, postgres://, ws://…) at `host:port`, keeping credentials, path and
 * query. A bare origin stays bare: `new URL` would add a trailing slash some clients dislike.
 */
export function rewriteUrl(baseUrl: string, host: string, port: number): string {
  const url = new URL(baseUrl);
  url.hostname = host;
  url.port = String(port);
  const out = url.toString();
  const addedSlash = !baseUrl.endsWith("/") && out.endsWith("/") && url.pathname === "/";
  return addedSlash && !url.search && !url.hash ? out.slice(0, -1) : out;
}
