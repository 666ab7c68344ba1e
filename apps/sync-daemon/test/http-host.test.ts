import { request } from "node:http";
import { connect } from "node:net";
import { freePort } from "@centrovision/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CliProcess, runCli, spawnCli } from "./support/cli.js";
import { type TestClinic, useTestClinic } from "./support/clinic.js";

const stack = useTestClinic("all");
let clinic: TestClinic;
let daemon: CliProcess;
let port: number;

beforeAll(async () => {
  clinic = stack.current();
  expect((await runCli(["--config", clinic.configPath, "init"])).code).toBe(0);
  port = await freePort();
  clinic.writeConfig("", { httpPort: port });
  daemon = spawnCli(["--config", clinic.configPath, "run"]);
  await daemon.waitForLog((line) => line.msg === "sync cycle done");
});

afterAll(async () => {
  daemon.child.kill("SIGTERM");
  expect((await daemon.done).code).toBe(0);
});

/** A GET to the daemon on 127.0.0.1 carrying `host` as its Host header, as a browser would. */
const get = (path: string, host: string) =>
  new Promise<{ status: number; text: string }>((resolve, reject) => {
    const call = request({ host: "127.0.0.1", port, path, headers: { host } }, (response) => {
      let text = "";
      response.on("data", (chunk: Buffer) => {
        text += chunk.toString();
      });
      response.on("end", () => resolve({ status: response.statusCode ?? 0, text }));
    });
    call.on("error", reject);
    call.end();
  });

describe("the daemon's HTTP endpoints answer this machine only (DNS rebinding)", () => {
  it("answers a Host that is 127.0.0.1, localhost or [::1], with or without the port", async () => {
    for (const host of [
      `127.0.0.1:${port}`,
      `localhost:${port}`,
      "localhost",
      "LocalHost",
      `[::1]:${port}`,
    ]) {
      const status = await get("/status", host);
      expect(status.status, `${host}: ${status.text}`).toBe(200);
      expect(JSON.parse(status.text)).toMatchObject({ mode: expect.any(String) });
      expect((await get("/healthz", host)).status, host).toBe(200);
    }
    expect((await get("/metrics", `localhost:${port}`)).text).toContain("centrovision_sync_cycles_total");
  });

  it("refuses any other Host with 403 and says why, on every path, without a byte of status", async () => {
    for (const host of [
      `evil.example:${port}`,
      "evil.example",
      `localhost.evil.example:${port}`,
      `127.0.0.1.nip.io:${port}`,
      `192.168.1.20:${port}`,
      `[::2]:${port}`,
    ]) {
      for (const path of ["/status", "/metrics", "/healthz", "/readyz", "/nope"]) {
        const refused = await get(path, host);
        expect(refused.status, `${host}${path}`).toBe(403);
        expect(JSON.parse(refused.text).error).toContain(
          "the Host header must be 127.0.0.1, localhost or [::1]",
        );
        expect(refused.text).not.toMatch(/clinic-|centrovision_sync|pendingUp/);
      }
    }
  });

  it("refuses a request without a Host (HTTP/1.0)", async () => {
    const reply = await new Promise<string>((resolve, reject) => {
      const socket = connect(port, "127.0.0.1", () => socket.end("GET /status HTTP/1.0\r\n\r\n"));
      let text = "";
      socket.on("data", (chunk: Buffer) => {
        text += chunk.toString();
      });
      socket.on("end", () => resolve(text));
      socket.on("error", reject);
    });
    expect(reply).toMatch(/^HTTP\/1\.1 403 /);
    expect(reply).not.toContain("pendingUp");
  });

  it("`status` still reads the running daemon over its endpoints", async () => {
    const cli = await runCli(["--config", clinic.configPath, "status", "--json"]);
    expect(JSON.parse(cli.stdout)).toMatchObject({ daemonRunning: true });
  });
});
