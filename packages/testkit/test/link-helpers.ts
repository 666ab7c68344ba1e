import { once } from "node:events";
import { connect, createServer, type Socket } from "node:net";

export interface EchoServer {
  readonly port: number;
  /** Bytes the server has received so far, over all connections. */
  received(): number;
  connections(): Promise<number>;
  close(): Promise<void>;
}

/** A TCP server on 127.0.0.1 that echoes every byte back and counts what it got. */
export async function startEchoServer(): Promise<EchoServer> {
  let received = 0;
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    socket.on("data", (chunk) => {
      received += chunk.length;
      socket.write(chunk);
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  if (typeof address !== "object" || !address) throw new Error("echo server has no address");
  return {
    port: address.port,
    received: () => received,
    connections: () =>
      new Promise((resolve, reject) => server.getConnections((e, n) => (e ? reject(e) : resolve(n)))),
    close: async () => {
      for (const socket of sockets) socket.destroy();
      server.close();
      await once(server, "close");
    },
  };
}

/**
 * Connects to 127.0.0.1:port; rejects with the socket error (e.g. code ECONNREFUSED). Later errors
 * are left to `closedWith`, so a reset the test provokes is not an uncaught exception.
 */
export function dial(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("error", reject);
    socket.once("connect", () => {
      socket.off("error", reject);
      socket.on("error", () => {});
      resolve(socket);
    });
  });
}

/** Collects what `socket` receives into a growing string. */
export function collect(socket: Socket): { text: () => string } {
  let text = "";
  socket.on("data", (chunk: Buffer) => (text += chunk.toString()));
  return { text: () => text };
}

/** Resolves with the error code the socket closed with (`undefined` for a clean close). */
export function closedWith(socket: Socket): Promise<string | undefined> {
  return new Promise((resolve) => {
    let code: string | undefined;
    socket.on("error", (error: NodeJS.ErrnoException) => (code = error.code));
    socket.once("close", () => resolve(code));
  });
}

/** Resolves once `socket` has received `text` (cumulatively). */
export async function receive(socket: Socket, text: string): Promise<void> {
  let got = "";
  while (got.length < text.length) {
    const [chunk] = (await once(socket, "data")) as [Buffer];
    got += chunk.toString();
  }
  if (got !== text) throw new Error(`expected ${JSON.stringify(text)}, got ${JSON.stringify(got)}`);
}

/** Milliseconds `promise` took to settle, and its outcome. */
export async function timed<T>(
  promise: PromiseLike<T>,
): Promise<{ ms: number; value?: T; error?: unknown; ok: boolean }> {
  const start = performance.now();
  try {
    const value = await promise;
    return { ms: performance.now() - start, value, ok: true };
  } catch (error) {
    return { ms: performance.now() - start, error, ok: false };
  }
}
