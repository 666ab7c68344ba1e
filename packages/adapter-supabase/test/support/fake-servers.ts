import { once } from "node:events";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";

export interface FakeServer {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** Requests received so far. */
  readonly requests: number;
  close(): Promise<void>;
}

/** A plain HTTP server answering every request with `respond`, counting what reached it. */
export async function startFakeServer(
  respond: (request: IncomingMessage, response: ServerResponse) => void,
): Promise<FakeServer> {
  let requests = 0;
  const server = createServer((request, response) => {
    requests++;
    respond(request, response);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  if (typeof address !== "object" || address === null) throw new Error("[test] fake server has no address");
  return {
    url: `http://127.0.0.1:${address.port}`,
    get requests() {
      return requests;
    },
    async close() {
      server.closeAllConnections();
      server.close();
      await once(server, "close");
    },
  };
}

/** A hotel or clinic-guest Wi-Fi login page: 200 and HTML for every path. */
export const captivePortal = (_request: IncomingMessage, response: ServerResponse) => {
  response.writeHead(200, { "content-type": "text/html; charset=utf-8" });
  response.end("<!doctype html><title>Wi-Fi</title><form>Acepto los términos</form>");
};

/** PostgREST when it lost its database, as Supabase answers during an incident. */
export const databaseLost = (_request: IncomingMessage, response: ServerResponse) => {
  response.writeHead(503, { "content-type": "application/json; charset=utf-8" });
  response.end(
    JSON.stringify({
      code: "PGRST000",
      message: "Database connection error. Retrying the connection.",
      details: null,
      hint: null,
    }),
  );
};
