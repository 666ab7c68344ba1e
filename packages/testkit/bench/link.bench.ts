/**
 * How closely the fault link keeps its promises in time — timed here, not asserted in
 * test/link-*.test.ts, where a loaded machine must not fail a correctness test. Each figure has a
 * reference measured in the same run, the two timed alternately (order flipped every round) so
 * drift in the machine's load hits both:
 * - refused: a connect to a refusing link, against a connect to a passing one. Refusing should
 *   cost no more than connecting: the kernel answers, nothing waits.
 * - latency: a one-byte echo through a link delaying each way by LATENCY_MS, against a plain timer
 *   of twice that. The delay is such a timer: the ratio is what the link adds to it.
 * - pass: the same echo through a passing link, against the echo server reached directly: what
 *   the proxy itself costs a round trip.
 *
 *   npm run bench                 (in packages/testkit)
 */
import type { Socket } from "node:net";
import { compareAlternately, createLink, type Link } from "../src/index.js";
import { dial, receive, startEchoServer } from "../test/link-helpers.js";

const CONNECTS = 300;
const ROUND_TRIPS = 300;
const DELAYED = 30;
const LATENCY_MS = 50;

/** Rejects unless the connect is refused: any other outcome would mean timing the wrong thing. */
async function refused(port: number): Promise<void> {
  const socket = await dial(port).catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ECONNREFUSED") return undefined;
    throw error;
  });
  if (socket) throw new Error("expected ECONNREFUSED, the connect succeeded");
}

async function connects(port: number): Promise<void> {
  (await dial(port)).destroy();
}

/** One byte there and back on an open connection. */
const echo = (socket: Socket) => () => {
  const answered = receive(socket, "x");
  socket.write("x");
  return answered;
};

const server = await startEchoServer();
const [passing, refusing, delaying] = (await Promise.all(
  [1, 2, 3].map(() => createLink({ target: { host: "127.0.0.1", port: server.port } })),
)) as [Link, Link, Link];
const sockets: Socket[] = [];
try {
  await refusing.refuse();
  await delaying.latency(LATENCY_MS);
  const open = async (port: number) => {
    const socket = await dial(port);
    socket.setNoDelay(true);
    sockets.push(socket);
    return socket;
  };
  const [direct, throughPass, throughLatency] = (await Promise.all(
    [server.port, passing.port, delaying.port].map(open),
  )) as [Socket, Socket, Socket];
  const timer = () => new Promise((resolve) => setTimeout(resolve, 2 * LATENCY_MS));

  console.log(
    `testkit link over raw TCP — ${CONNECTS} connects, ${ROUND_TRIPS} round trips, ${DELAYED} delayed ` +
      `round trips of ${LATENCY_MS} ms each way, Node ${process.version}`,
  );
  await compareAlternately(
    "refused connect",
    "a connect that works",
    () => refused(refusing.port),
    () => connects(passing.port),
    CONNECTS,
    30,
  );
  await compareAlternately(
    `round trip, ${LATENCY_MS} ms latency each way`,
    `a ${2 * LATENCY_MS} ms timer`,
    echo(throughLatency),
    timer,
    DELAYED,
    2,
  );
  await compareAlternately(
    "round trip through a passing link",
    "a direct round trip",
    echo(throughPass),
    echo(direct),
    ROUND_TRIPS,
    30,
  );
} finally {
  for (const socket of sockets) socket.destroy();
  await Promise.all([passing.close(), refusing.close(), delaying.close()]);
  await server.close();
}
