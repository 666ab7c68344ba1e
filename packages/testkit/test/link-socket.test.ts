import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createLink, type Link } from "../src/index.js";
import {
  closedWith,
  collect,
  dial,
  type EchoServer,
  pause,
  receive,
  startEchoServer,
  timed,
} from "./link-helpers.js";

// The byte-level contract of each mode, over raw TCP against an echo server, so what the link
// does to bytes, FINs and RSTs is observed directly rather than through a client library.
let echo: EchoServer;
let link: Link;

beforeEach(async () => {
  echo = await startEchoServer();
  link = await createLink({ target: `127.0.0.1:${echo.port}` });
});

afterEach(async () => {
  await link.close();
  await echo.close();
});

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
    expect(refused.ms).toBeLessThan(1000);

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
    const talkerClosed = closedWith(talker);
    let closes = 0;
    for (const socket of [idle, talker, fresh]) socket.on("close", () => closes++);
    talker.write("lost");
    fresh.write("lost too");
    await pause(300);
    expect(heard.text()).toBe("");
    expect(echo.received()).toBe(0);
    expect(closes).toBe(0);

    await link.pass();
    // The talker lost bytes: TCP would never deliver the stream with a hole, so it is reset...
    expect(await talkerClosed).toBe("ECONNRESET");
    expect(heard.text()).toBe("");
    // ...while the connection that stayed silent survives the outage.
    idle.write("ok");
    await receive(idle, "ok");
    expect(echo.received()).toBe(2);
    idle.destroy();
  });

  it("blackhole discards data still delayed in both directions when it begins", async () => {
    const socket = await dial(link.port);
    const heard = collect(socket);
    const closed = closedWith(socket);
    await link.latency(300);
    socket.write("abc");
    await expect.poll(() => echo.received(), { interval: 10 }).toBe(3);
    await pause(50); // lets the echo reach the link, where it waits out its 300 ms downstream
    socket.write("def");
    await pause(50); // lets "def" reach the link, where it waits out its 300 ms upstream
    await link.blackhole();
    await pause(400);
    expect(echo.received()).toBe(3);
    expect(heard.text()).toBe("");
    await link.pass();
    expect(await closed).toBe("ECONNRESET");
    expect(heard.text()).toBe("");
  });

  it("latency delays each direction and keeps order when switching back to pass mid-stream", async () => {
    const socket = await dial(link.port);
    const heard = collect(socket);
    await link.latency(150);
    const start = performance.now();
    socket.write("a");
    await receive(socket, "a");
    expect(performance.now() - start).toBeGreaterThanOrEqual(2 * 150 - 5);

    for (let i = 0; i < 20; i++) socket.write(String(i % 10));
    await link.pass();
    for (let i = 20; i < 40; i++) socket.write(String(i % 10));
    const expected = `a${"0123456789".repeat(4)}`;
    await expect.poll(() => heard.text(), { timeout: 3000 }).toBe(expected);
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
      await link.flap(200, down);
      // One probe: a fresh connection that must echo a byte within 100 ms. A probe caught by the
      // switch back to pass was blackholed, so the link resets it: that counts as a failure.
      const probe = async () => {
        const socket = await dial(link.port).catch(() => undefined);
        if (!socket) return false;
        socket.write("p");
        const echoed = await Promise.race([
          receive(socket, "p").then(
            () => true,
            () => false,
          ),
          pause(100).then(() => false),
        ]);
        socket.destroy();
        return echoed;
      };
      const outcomes: boolean[] = [];
      const end = performance.now() + 1100;
      while (performance.now() < end) {
        const ok = await probe();
        if (outcomes.at(-1) !== ok) outcomes.push(ok);
        await pause(20);
      }
      expect(outcomes[0]).toBe(true);
      // ~5 phase changes in 1.1 s; asking for 3 leaves room for a slow machine.
      expect(outcomes.length).toBeGreaterThanOrEqual(4);
      await link.pass();
      expect(await probe()).toBe(true);
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
