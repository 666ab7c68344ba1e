import { subscribe, unsubscribe } from "node:diagnostics_channel";
import type { Socket } from "node:net";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createLink, type Link } from "../src/index.js";
import {
  closedWith,
  collect,
  dial,
  type EchoServer,
  receive,
  startEchoServer,
  timed,
} from "./link-helpers.js";

// The byte-level contract of each mode, over raw TCP against an echo server, so what the link
// does to bytes, FINs and RSTs is observed directly rather than through a client library. Nothing
// here sleeps: a test waits until the link has read the bytes in question, then checks what it did
// with them, and delays and periods run on fake timers.
let echo: EchoServer;
let link: Link;
let reads: LinkReads;

beforeEach(async () => {
  echo = await startEchoServer();
  link = await createLink({ target: `127.0.0.1:${echo.port}` });
  reads = watchLinkReads(link.port, echo.port);
});

afterEach(async () => {
  vi.useRealTimers();
  reads.stop();
  await link.close();
  await echo.close();
});

interface LinkReads {
  /** Bytes the link has read from its clients. */
  readonly up: number;
  /** Resolves once the link has read `bytes` in all from its clients (`up`) or from the target (`down`). */
  reach(direction: "up" | "down", bytes: number): Promise<void>;
  stop(): void;
}

/**
 * Counts the bytes the link reads, whether it then delivers, delays or drops them: its stats count
 * only what it delivered, and a test must know the link has taken bytes in before it checks what
 * the link did with them. The link runs in this process, so its sockets are seen through net's
 * diagnostics channels; `reach` waits on their 'data' events, no timer, so it works under fake timers.
 */
function watchLinkReads(linkPort: number, targetPort: number): LinkReads {
  const read = { up: 0, down: 0 };
  let waiters: { direction: "up" | "down"; bytes: number; resolve: () => void }[] = [];
  const count = (direction: "up" | "down") => (chunk: Buffer) => {
    read[direction] += chunk.length;
    // Resolved here, a waiting test resumes only after the link's own 'data' listener has run.
    for (const waiter of waiters) if (read[waiter.direction] >= waiter.bytes) waiter.resolve();
    waiters = waiters.filter((waiter) => read[waiter.direction] < waiter.bytes);
  };
  const onAccepted = (message: unknown) => {
    const { socket } = message as { socket: Socket };
    if (socket.localPort === linkPort) socket.on("data", count("up"));
  };
  const onDialled = (message: unknown) => {
    const { socket } = message as { socket: Socket };
    socket.once("connect", () => {
      if (socket.remotePort === targetPort) socket.on("data", count("down"));
    });
  };
  subscribe("net.server.socket", onAccepted);
  subscribe("net.client.socket", onDialled);
  return {
    get up() {
      return read.up;
    },
    reach: (direction, bytes) =>
      read[direction] >= bytes
        ? Promise.resolve()
        : new Promise((resolve) => waiters.push({ direction, bytes, resolve })),
    stop() {
      unsubscribe("net.server.socket", onAccepted);
      unsubscribe("net.client.socket", onDialled);
    },
  };
}

describe("createLink options", () => {
  it("rewrites a URL's host and port to the link's, keeping the rest", () => {
    expect(link.host).toBe("127.0.0.1");
    expect(link.url("postgres://postgres:p%40ss@10.0.0.5:5432/clinic?sslmode=disable")).toBe(
      `postgres://postgres:p%40ss@127.0.0.1:${link.port}/clinic?sslmode=disable`,
    );
    expect(link.url("http://localhost:54321")).toBe(`http://127.0.0.1:${link.port}`);
    expect(link.url("http://localhost:54321/rest/v1/")).toBe(`http://127.0.0.1:${link.port}/rest/v1/`);
  });

  it("rejects malformed targets and modes with a message naming the problem", async () => {
    await expect(createLink({ target: "no-port" })).rejects.toThrow(/host:port/);
    await expect(createLink({ target: { host: "127.0.0.1", port: 70_000 } })).rejects.toThrow(/port 1-65535/);
    await expect(link.latency(-1)).rejects.toThrow(/latency ms/);
    await expect(link.flap(0)).rejects.toThrow(/periodMs/);
    expect(link.mode).toEqual({ kind: "pass" });
    await link.flap(1000);
    expect(link.mode).toEqual({ kind: "flap", periodMs: 1000, down: "blackhole" });
  });
});

describe("link modes over raw TCP", () => {
  it("pass forwards both ways and counts connections and bytes", async () => {
    const socket = await dial(link.port);
    socket.write("hello");
    await receive(socket, "hello");
    expect(link.stats).toEqual({ accepted: 1, active: 1, bytesUp: 5, bytesDown: 5 });
    const closed = closedWith(socket);
    socket.end();
    expect(await closed).toBeUndefined();
    await expect.poll(() => link.stats.active).toBe(0);
  });

  it("refuse closes the port, resets a connection that talks, and re-opens the same port on pass", async () => {
    const idle = await dial(link.port);
    const chatty = await dial(link.port);
    await link.refuse();
    const refused = await timed(dial(link.port));
    expect(refused.ok).toBe(false);
    expect(refused.error).toMatchObject({ code: "ECONNREFUSED" });

    const chattyClosed = closedWith(chatty);
    chatty.write("x");
    expect(await chattyClosed).toBe("ECONNRESET");

    await link.pass();
    idle.write("still here");
    await receive(idle, "still here");
    const fresh = await dial(link.port);
    fresh.write("again");
    await receive(fresh, "again");
    idle.destroy();
    fresh.destroy();
  });

  it("blackhole hangs existing and new connections without closing them, and discards what it held", async () => {
    const idle = await dial(link.port);
    const talker = await dial(link.port);
    const heard = collect(talker);
    await link.blackhole();
    const fresh = await dial(link.port); // accepted, as a SYN-ACK from a far router would not be
    const [talkerClosed, freshClosed] = [closedWith(talker), closedWith(fresh)];
    let closes = 0;
    for (const socket of [idle, talker, fresh]) socket.on("close", () => closes++);
    talker.write("lost");
    fresh.write("lost too");
    await reads.reach("up", 12);
    // Taken in and not passed on: in pass mode the link writes what it reads in the same turn.
    expect(link.stats).toEqual({ accepted: 3, active: 3, bytesUp: 0, bytesDown: 0 });
    expect(heard.text()).toBe("");
    expect(closes).toBe(0);

    await link.pass();
    // Both talkers lost bytes: TCP would never deliver the stream with a hole, so they are reset...
    expect(await talkerClosed).toBe("ECONNRESET");
    expect(await freshClosed).toBe("ECONNRESET");
    expect(heard.text()).toBe("");
    // ...while the connection that stayed silent survives the outage.
    idle.write("ok");
    await receive(idle, "ok");
    expect(echo.received()).toBe(2);
    idle.destroy();
  });

  it("blackhole discards data still delayed in both directions when it begins", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "performance"] });
    const socket = await dial(link.port);
    const heard = collect(socket);
    const closed = closedWith(socket);
    await link.latency(300);
    socket.write("abc");
    await reads.reach("up", 3);
    vi.advanceTimersByTime(300);
    await reads.reach("down", 3); // the echo, waiting out its 300 ms downstream
    socket.write("def");
    await reads.reach("up", 6); // waiting out its 300 ms upstream
    await link.blackhole();
    vi.advanceTimersByTime(300);
    // Both were due by now: kept, they would have been delivered.
    expect(link.stats).toMatchObject({ bytesUp: 3, bytesDown: 0 });
    await link.pass();
    expect(await closed).toBe("ECONNRESET");
    expect(heard.text()).toBe("");
    expect(echo.received()).toBe(3);
  });

  it("latency delays each direction and keeps order when switching back to pass mid-stream", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "performance"] });
    const socket = await dial(link.port);
    await link.latency(150);
    socket.write("a");
    await reads.reach("up", 1);
    vi.advanceTimersByTime(149);
    expect(link.stats.bytesUp).toBe(0);
    vi.advanceTimersByTime(1);
    expect(link.stats.bytesUp).toBe(1);
    await reads.reach("down", 1);
    vi.advanceTimersByTime(149);
    expect(link.stats.bytesDown).toBe(0);
    const echoed = receive(socket, "a");
    vi.advanceTimersByTime(1);
    await echoed;

    for (let i = 0; i < 20; i++) socket.write(String(i % 10));
    await reads.reach("up", 21);
    await link.pass();
    for (let i = 20; i < 40; i++) socket.write(String(i % 10));
    await reads.reach("up", 41);
    // Passed at once, the later twenty would overtake the twenty still delayed.
    expect(link.stats.bytesUp).toBe(1);
    const rest = receive(socket, "0123456789".repeat(4));
    vi.advanceTimersByTime(150);
    await rest;
    socket.destroy();
  });

  it("reset kills open connections with RST and keeps the mode", async () => {
    const socket = await dial(link.port);
    socket.write("x");
    await receive(socket, "x");
    const closed = closedWith(socket);
    link.reset();
    expect(await closed).toBe("ECONNRESET");
    expect(link.mode).toEqual({ kind: "pass" });
    const next = await dial(link.port);
    next.write("y");
    await receive(next, "y");
    next.destroy();
  });

  it.each(["refuse", "blackhole"] as const)(
    "flap alternates pass and %s every period, starting with pass",
    async (down) => {
      vi.useFakeTimers({ toFake: ["setInterval", "clearInterval"] });
      // The phase a fresh connection meets: refused, held (the link took its byte in and delivered
      // nothing), or passed (echoed).
      const met = async () => {
        const socket = await dial(link.port).catch(() => undefined);
        if (!socket) return "refuse";
        try {
          const [delivered, read] = [link.stats.bytesUp, reads.up];
          socket.write("p");
          await reads.reach("up", read + 1);
          if (link.stats.bytesUp === delivered) return "blackhole";
          await receive(socket, "p");
          return "pass";
        } finally {
          socket.destroy();
        }
      };
      // Leaving refuse, the link re-opens its port a few event-loop turns after the phase changes.
      // Interval 0: waitFor moves fake timers on by its interval at every try.
      const expectPhase = (phase: "pass" | typeof down) =>
        vi.waitFor(async () => expect(await met()).toBe(phase), { interval: 0 });
      await link.flap(200, down);
      for (const phase of ["pass", down, "pass", down] as const) {
        await expectPhase(phase);
        vi.advanceTimersByTime(199);
        await expectPhase(phase);
        vi.advanceTimersByTime(1);
      }
      await expectPhase("pass");
      await link.pass();
      vi.advanceTimersByTime(200);
      await expectPhase("pass");
    },
  );
});

describe("link close", () => {
  const handles = () =>
    process.getActiveResourcesInfo().filter((type) => type === "TCPSocketWrap" || type === "TCPServerWrap")
      .length;

  it("leaves no listening port and no open socket, and is idempotent", async () => {
    const before = handles();
    const other = await createLink({ target: { host: "127.0.0.1", port: echo.port } });
    const a = await dial(other.port);
    const b = await dial(other.port);
    a.write("x");
    await receive(a, "x");
    await other.latency(10_000);
    a.write("queued");
    await other.flap(50);
    const aClosed = closedWith(a);
    const bClosed = closedWith(b);
    await Promise.all([other.close(), other.close()]);
    await Promise.all([aClosed, bClosed]);
    expect((await timed(dial(other.port))).error).toMatchObject({ code: "ECONNREFUSED" });
    expect(await echo.connections()).toBe(0);
    // Sockets from earlier tests may still be closing, hence "no more than before" (this test adds 5).
    expect(handles()).toBeLessThanOrEqual(before);
    await expect(other.pass()).rejects.toThrow(/closed/);
  });
});
