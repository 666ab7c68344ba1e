import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { Agent, request } from "node:http";
import type { Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import {
  GATEWAY_REQUEST_CHANNEL,
  GATEWAY_UPGRADE_CHANNEL,
  type GatewayRequestRecord,
  type GatewayUpgradeRecord,
} from "../src/supabase/gateway-stats.js";
import { type Harness, startHarness } from "./fixtures/supabase/harness.js";

const DOCTOR = "33333333-3333-4333-8333-333333333333";
let h: Harness;
const requests: GatewayRequestRecord[] = [];
const upgrades: GatewayUpgradeRecord[] = [];
const onRequest = (record: unknown) => requests.push(record as GatewayRequestRecord);
const onUpgrade = (record: unknown) => upgrades.push(record as GatewayUpgradeRecord);

beforeAll(async () => {
  // Before any client connects, as the channel asks.
  subscribe(GATEWAY_REQUEST_CHANNEL, onRequest);
  subscribe(GATEWAY_UPGRADE_CHANNEL, onUpgrade);
  h = await startHarness();
});
afterAll(async () => {
  unsubscribe(GATEWAY_REQUEST_CHANNEL, onRequest);
  unsubscribe(GATEWAY_UPGRADE_CHANNEL, onUpgrade);
  await h?.stop();
});

/** Records published while `act` runs. */
async function during(act: () => Promise<unknown>): Promise<GatewayRequestRecord[]> {
  const from = requests.length;
  await act();
  return requests.slice(from);
}

describe("the gateway's request records", () => {
  it("name the caller of each answer: the token's sub, else its role; null without a token", async () => {
    const doctor = h.asUser(await h.stack.mintUserToken(DOCTOR));
    const records = await during(async () => {
      await doctor.rpc("whoami");
      await h.anon.rpc("whoami");
      await h.service.from("people").select("id");
      await h.rest("/people", { headers: { apikey: "", authorization: "Bearer not-a-token" } });
    });
    expect(records.map(({ method, path, status, caller }) => ({ method, path, status, caller }))).toEqual([
      { method: "POST", path: "/rest/v1/rpc/whoami", status: 200, caller: DOCTOR },
      { method: "POST", path: "/rest/v1/rpc/whoami", status: 200, caller: "anon" },
      { method: "GET", path: "/rest/v1/people", status: 200, caller: "service_role" },
      { method: "GET", path: "/rest/v1/people", status: 401, caller: null },
    ]);
  });

  it("count every byte each request and its answer took on the wire, on a keep-alive connection too", async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    /** Sends one request on the agent's connection; resolves with the client's byte counts for it. */
    const send = (path: string, body?: string) =>
      new Promise<{ sent: number; received: number; socket: Socket }>((resolve, reject) => {
        const call = request(`${h.stack.url}${path}`, {
          agent,
          method: body === undefined ? "GET" : "POST",
          headers: { apikey: h.stack.anonKey, "content-type": "application/json" },
        });
        call.on("error", reject);
        call.on("response", (response) => {
          response.resume();
          response.on("end", () => {
            const socket = call.socket as Socket;
            resolve({ sent: socket.bytesWritten, received: socket.bytesRead, socket });
          });
        });
        call.end(body);
      });
    const counts: { sent: number; received: number; socket: Socket }[] = [];
    const records = await during(async () => {
      counts.push(await send("/rest/v1/rpc/get_status", JSON.stringify({ name_param: "é".repeat(5000) })));
      counts.push(await send("/rest/v1/people?select=id"));
    });
    agent.destroy();
    const [first, second] = counts as [(typeof counts)[0], (typeof counts)[0]];
    expect(second.socket).toBe(first.socket);
    expect(records.map((record) => [record.path, record.status, record.bytesIn, record.bytesOut])).toEqual([
      ["/rest/v1/rpc/get_status", 200, first.sent, first.received],
      ["/rest/v1/people", 200, second.sent - first.sent, second.received - first.received],
    ]);
    // "é" is two bytes in UTF-8: 10,000 bytes of body, plus the headers.
    expect(first.sent).toBeGreaterThan(10_000);
  });
});

describe("the gateway's upgrade records", () => {
  it("hand over each Realtime connection's socket, whose counts grow with its traffic", async () => {
    const from = upgrades.length;
    const ws = new WebSocket(
      `${h.stack.url.replace("http", "ws")}/realtime/v1/websocket?apikey=${h.stack.anonKey}&vsn=1.0.0`,
    );
    await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
    const [record] = upgrades.slice(from);
    expect(record?.path).toBe("/realtime/v1/websocket");
    const before = { read: record?.socket.bytesRead ?? 0, written: record?.socket.bytesWritten ?? 0 };
    const reply = new Promise((resolve) => ws.once("message", resolve));
    ws.send(JSON.stringify({ topic: "phoenix", event: "heartbeat", payload: {}, ref: "1" }));
    await reply;
    expect(record?.socket.bytesRead).toBeGreaterThan(before.read);
    expect(record?.socket.bytesWritten).toBeGreaterThan(before.written);
    ws.close();
  });
});
