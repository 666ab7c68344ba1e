import { connect, type Socket } from "node:net";
import type { LinkPhase } from "../link.js";

/** What the link owner needs from one proxied connection. */
export interface LinkConnectionHooks {
  readonly target: { readonly host: string; readonly port: number };
  /** Called for every chunk delivered to the far side (dropped bytes are never counted). */
  onBytes(direction: "up" | "down", bytes: number): void;
  /** Called once, after both sockets have closed. */
  onClosed(connection: LinkConnection): void;
}

/** A chunk, a FIN (`end`) or an abort (`reset`) travelling in one direction, due at `due` (performance.now ms). */
interface Item {
  readonly due: number;
  readonly data: Buffer | "end" | "reset";
}

/**
 * One direction of a connection. Items leave strictly in arrival order, each no earlier than its
 * due time, so a latency change never reorders bytes: a chunk that arrives after the link went
 * from `latency` back to `pass` still waits behind the delayed chunks ahead of it.
 */
class Lane {
  private readonly queue: Item[] = [];
  private timer: NodeJS.Timeout | undefined;
  private backpressured = false;

  constructor(
    private readonly source: () => Socket | undefined,
    private readonly dest: () => Socket,
    private readonly onChunk: (bytes: number) => void,
    private readonly onReset: () => void,
  ) {}

  get pending(): boolean {
    return this.queue.length > 0;
  }

  push(item: Item): void {
    this.queue.push(item);
    this.pump();
  }

  /** Forgets everything queued; returns whether anything was lost. */
  drop(): boolean {
    const lost = this.queue.length > 0;
    this.queue.length = 0;
    clearTimeout(this.timer);
    this.timer = undefined;
    return lost;
  }

  private pump(): void {
    const now = performance.now();
    for (let head = this.queue[0]; head; head = this.queue[0]) {
      if (head.due > now) {
        this.timer ??= setTimeout(() => {
          this.timer = undefined;
          this.pump();
        }, head.due - now).unref();
        return;
      }
      this.queue.shift();
      if (head.data === "reset") {
        this.onReset();
        return;
      }
      if (head.data === "end") this.dest().end();
      else this.write(head.data);
    }
  }

  /** Pauses the source while the destination's buffer is full, so a fast sender cannot grow memory without bound. */
  private write(chunk: Buffer): void {
    this.onChunk(chunk.length);
    const dest = this.dest();
    if (dest.write(chunk) || this.backpressured) return;
    this.backpressured = true;
    this.source()?.pause();
    dest.once("drain", () => {
      this.backpressured = false;
      this.source()?.resume();
    });
  }
}

/**
 * A client socket accepted by the link and its socket to the target, with the link's current
 * phase applied to every byte, FIN and abort that crosses.
 *
 * Contract per phase:
 * - `pass`/`latency`: everything is forwarded in order (delayed by `ms` in `latency`); an abrupt
 *   close on one side resets the other.
 * - `blackhole`: everything that arrives — and everything still queued when the blackhole begins —
 *   is discarded, never delivered later: a late response would reach a client after its deadline
 *   expired. Nothing is closed or reset. TCP never delivers a stream with a hole in it, so a
 *   connection that lost anything is reset as soon as the blackhole ends (as if TCP had given up
 *   retransmitting); a connection that stayed silent survives, as an idle keep-alive does.
 * - `refuse`: the port answers every packet with RST, so a connection is reset when anything
 *   crosses it; an idle one survives until it talks.
 *
 * The target is dialled only once bytes may pass, so a blackholed link never reaches the server.
 */
export class LinkConnection {
  /** Resolves once both sockets have closed. */
  readonly closed: Promise<void>;
  private readonly up: Lane;
  private readonly down: Lane;
  private readonly open = new Set<Socket>();
  private upstream: Socket | undefined;
  private damaged = false;
  private closing = false;
  private finished = false;
  private resolveClosed!: () => void;

  constructor(
    private readonly client: Socket,
    private phase: LinkPhase,
    private readonly hooks: LinkConnectionHooks,
  ) {
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    const lane = (direction: "up" | "down", source: () => Socket | undefined, dest: () => Socket) =>
      new Lane(
        source,
        dest,
        (bytes) => hooks.onBytes(direction, bytes),
        () => this.reset(),
      );
    this.up = lane(
      "up",
      () => client,
      () => this.dial(),
    );
    this.down = lane(
      "down",
      () => this.upstream,
      () => client,
    );
    this.attach(client, this.up);
    if (phase.kind === "refuse") this.reset();
    else if (phase.kind !== "blackhole") this.dial();
  }

  /** Applies a new phase to bytes already queued and to everything that arrives from now on. */
  setPhase(phase: LinkPhase): void {
    const previous = this.phase;
    this.phase = phase;
    if (this.closing) return;
    if (phase.kind === "blackhole") {
      const lostUp = this.up.drop();
      const lostDown = this.down.drop();
      if (lostUp || lostDown) this.damaged = true;
    } else if (previous.kind === "blackhole" && this.damaged) {
      this.reset();
    } else if (phase.kind === "refuse") {
      if (this.up.pending || this.down.pending) this.reset();
    } else {
      this.dial();
    }
  }

  /** Aborts both sides with RST, as a server restart or an expired NAT entry does. */
  reset(): void {
    this.shutdown((socket) => socket.resetAndDestroy());
  }

  /** Closes both sides without RST; used when the link itself closes. */
  destroy(): void {
    this.shutdown((socket) => socket.destroy());
  }

  private shutdown(kill: (socket: Socket) => void): void {
    if (this.closing) return;
    this.closing = true;
    this.up.drop();
    this.down.drop();
    for (const socket of [this.client, this.upstream]) if (socket && !socket.destroyed) kill(socket);
    this.finishIfClosed();
  }

  private dial(): Socket {
    if (this.upstream) return this.upstream;
    const socket = connect({ ...this.hooks.target, allowHalfOpen: true });
    this.upstream = socket;
    this.attach(socket, this.down);
    return socket;
  }

  private attach(socket: Socket, lane: Lane): void {
    let ended = false;
    this.open.add(socket);
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => this.arrive(lane, chunk));
    socket.on("end", () => {
      ended = true;
      this.arrive(lane, "end");
    });
    // Errors show up as an abrupt 'close' below; a listener is needed so they are not thrown.
    socket.on("error", () => {});
    socket.on("close", (hadError) => {
      this.open.delete(socket);
      if (hadError || !ended) this.arrive(lane, "reset");
      this.finishIfClosed();
    });
  }

  private arrive(lane: Lane, data: Buffer | "end" | "reset"): void {
    if (this.closing) return;
    switch (this.phase.kind) {
      case "blackhole":
        this.damaged = true;
        return;
      case "refuse":
        this.reset();
        return;
      default:
        lane.push({ due: performance.now() + (this.phase.kind === "latency" ? this.phase.ms : 0), data });
    }
  }

  private finishIfClosed(): void {
    if (this.finished || this.open.size > 0) return;
    this.finished = true;
    this.closing = true;
    this.up.drop();
    this.down.drop();
    this.hooks.onClosed(this);
    this.resolveClosed();
  }
}
