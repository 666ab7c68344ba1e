import { once } from "node:events";
import { createServer, type Server, type Socket } from "node:net";
import { LinkConnection } from "./internal/link-connection.js";
import { normalizeMode, parseListenPort, parseTarget, rewriteUrl } from "./internal/link-options.js";

/** Where a link forwards to: `{ host, port }` or `"host:port"`. */
export type LinkTarget = { readonly host: string; readonly port: number } | string;

export interface CreateLinkOptions {
  readonly target: LinkTarget;
  /** Port on 127.0.0.1. Default: a free port. Either way the port stays the link's for its lifetime, across `refuse`. */
  readonly listenPort?: number;
}

/** A steady state of the link; `flap` alternates between two of these. */
export type LinkPhase =
  /** Bytes pass untouched. */
  | { readonly kind: "pass" }
  /** Host up, port closed: new connections get ECONNREFUSED; an open one is reset when anything crosses it. */
  | { readonly kind: "refuse" }
  /**
   * The internet dropped: connections are accepted but no byte, FIN or RST passes either way, and open
   * connections hang. Lost bytes are discarded, never delivered late; a connection that lost any is
   * reset when the blackhole ends, one that stayed idle survives.
   */
  | { readonly kind: "blackhole" }
  /** Every chunk is delayed by `ms` in each direction, order preserved. Connecting is not delayed. */
  | { readonly kind: "latency"; readonly ms: number };

export type LinkMode =
  | LinkPhase
  /** `pass` and `down` (default `blackhole`) alternate every `periodMs`, starting with `pass`. */
  | { readonly kind: "flap"; readonly periodMs: number; readonly down?: "blackhole" | "refuse" };

export interface LinkStats {
  /** Client connections accepted since the link was created. */
  readonly accepted: number;
  /** Client connections not yet fully closed. */
  readonly active: number;
  /** Bytes delivered client → target (bytes a blackhole dropped are not counted). */
  readonly bytesUp: number;
  /** Bytes delivered target → client. */
  readonly bytesDown: number;
}

/**
 * A TCP proxy on 127.0.0.1 whose behaviour can be switched while clients use it. Mode changes apply
 * at once to new and existing connections; the returned promise resolves when the listener matches
 * the mode (closed for `refuse`, listening otherwise), so a client connecting after `await` sees it.
 */
export interface Link {
  readonly host: string;
  readonly port: number;
  /** The mode last set (with defaults filled in); for `flap`, the flap itself, not its current phase. */
  readonly mode: LinkMode;
  /** A snapshot of the counters. */
  readonly stats: LinkStats;
  /** `baseUrl` with its host and port replaced by the link's, e.g. a `postgres://` or `http://` URL. */
  url(baseUrl: string): string;
  /** Switches mode; cancels a running flap. Rejects on an invalid mode or a closed link. */
  set(mode: LinkMode): Promise<void>;
  pass(): Promise<void>;
  refuse(): Promise<void>;
  blackhole(): Promise<void>;
  latency(ms: number): Promise<void>;
  flap(periodMs: number, down?: "blackhole" | "refuse"): Promise<void>;
  /** Kills every open connection with RST (a server restart, an expired NAT entry). The mode is unchanged. */
  reset(): void;
  /** Stops listening and destroys every socket; resolves once no handle is left. Idempotent. */
  close(): Promise<void>;
}

const LINK_HOST = "127.0.0.1";
const PASS: LinkPhase = Object.freeze({ kind: "pass" });

class FaultLink implements Link {
  readonly host = LINK_HOST;
  port: number;
  mode: LinkMode = PASS;
  private phase: LinkPhase = PASS;
  private listener: Server | undefined;
  /** Listener opens and closes run one after another: closing a server still binding would leak it. */
  private listenerChange: Promise<void> = Promise.resolve();
  private readonly servers = new Set<Server>();
  private readonly connections = new Set<LinkConnection>();
  private readonly counters = { accepted: 0, bytesUp: 0, bytesDown: 0 };
  private flapTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private closing: Promise<void> | undefined;

  constructor(
    private readonly target: { host: string; port: number },
    listenPort: number,
  ) {
    this.port = listenPort;
  }

  get stats(): LinkStats {
    return Object.freeze({ ...this.counters, active: this.connections.size });
  }

  async start(): Promise<void> {
    this.listener = await this.listen();
    const address = this.listener.address();
    if (typeof address === "object" && address) this.port = address.port;
  }

  url(baseUrl: string): string {
    return rewriteUrl(baseUrl, LINK_HOST, this.port);
  }

  async set(mode: LinkMode): Promise<void> {
    if (this.closed) throw new Error("[testkit] link is closed");
    const next = normalizeMode(mode);
    clearInterval(this.flapTimer);
    this.mode = next;
    if (next.kind !== "flap") return this.enter(next);
    const down: LinkPhase = Object.freeze({ kind: next.down ?? "blackhole" });
    let isDown = false;
    this.flapTimer = setInterval(() => {
      isDown = !isDown;
      // A failed re-listen leaves the link refusing; the next pass phase tries again, so nothing is lost.
      this.enter(isDown ? down : PASS).catch(() => {});
    }, next.periodMs).unref();
    return this.enter(PASS);
  }

  pass = () => this.set({ kind: "pass" });
  refuse = () => this.set({ kind: "refuse" });
  blackhole = () => this.set({ kind: "blackhole" });
  latency = (ms: number) => this.set({ kind: "latency", ms });
  flap = (periodMs: number, down?: "blackhole" | "refuse") => this.set({ kind: "flap", periodMs, down });

  reset(): void {
    for (const connection of [...this.connections]) connection.reset();
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true;
      clearInterval(this.flapTimer);
      await this.syncListener();
      const connections = [...this.connections];
      for (const connection of connections) connection.destroy();
      await Promise.all([
        ...connections.map((c) => c.closed),
        ...[...this.servers].map((s) => once(s, "close")),
      ]);
    })();
    return this.closing;
  }

  private enter(phase: LinkPhase): Promise<void> {
    this.phase = phase;
    for (const connection of this.connections) connection.setPhase(phase);
    return this.syncListener();
  }

  private wantsListener(): boolean {
    return !this.closed && this.phase.kind !== "refuse";
  }

  private syncListener(): Promise<void> {
    // Closed right here, not in the queue: a client that connects right after refuse() — even
    // without awaiting it — must already see ECONNREFUSED.
    if (!this.wantsListener()) this.closeListener();
    const step = this.listenerChange.then(async () => {
      if (!this.wantsListener()) this.closeListener();
      else this.listener ??= await this.listen();
    });
    this.listenerChange = step.catch(() => {});
    return step;
  }

  /** A closed listening socket is what makes the kernel answer ECONNREFUSED; open connections are kept. */
  private closeListener(): void {
    this.listener?.close();
    this.listener = undefined;
  }

  private listen(): Promise<Server> {
    // A fresh server each time: re-listening a net.Server that still has connections from before
    // its close() would leave its 'close' event, which close() awaits, never emitted.
    const server = createServer({ allowHalfOpen: true }, (socket) => this.accept(socket));
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.port, LINK_HOST, () => {
        server.off("error", reject);
        // A failed accept (e.g. EMFILE) only costs its own client, which sees a reset.
        server.on("error", () => {});
        this.servers.add(server);
        server.once("close", () => this.servers.delete(server));
        resolve(server);
      });
    });
  }

  private accept(socket: Socket): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    this.counters.accepted++;
    const connection = new LinkConnection(socket, this.phase, {
      target: this.target,
      onBytes: (direction, bytes) => {
        if (direction === "up") this.counters.bytesUp += bytes;
        else this.counters.bytesDown += bytes;
      },
      onClosed: (closed) => this.connections.delete(closed),
    });
    this.connections.add(connection);
  }
}

/**
 * Starts a fault-injecting TCP proxy on 127.0.0.1 in front of `target`, in `pass` mode. Works for any
 * TCP protocol (HTTP to the Supabase gateway, the Postgres wire protocol). Always `close()` it.
 */
export async function createLink(options: CreateLinkOptions): Promise<Link> {
  const link = new FaultLink(parseTarget(options.target), parseListenPort(options.listenPort));
  await link.start();
  return link;
}
