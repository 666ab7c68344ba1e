import { spawn } from "node:child_process";
import { once } from "node:events";
import { readFile, stat } from "node:fs/promises";
import { connect } from "node:net";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const DEMO = fileURLToPath(new URL("../../../scripts/demo.mjs", import.meta.url));

/** True when something still accepts connections on the port. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

describe("npm run demo as a process", () => {
  it("comes up, prints its URL and controls, and SIGINT stops every server it started", async () => {
    const child = spawn(process.execPath, [DEMO, "--port", "0"], { stdio: ["ignore", "pipe", "inherit"] });
    const exited = once(child, "exit");
    const lines: string[] = [];
    type Ready = { url: string; secret: string; cloudDbUrl: string; databaseUrlsFile: string };
    let ready: Ready | undefined;
    for await (const line of createInterface({ input: child.stdout })) {
      lines.push(line);
      if (line.startsWith('{"ready":true')) {
        ready = JSON.parse(line) as Ready;
        break;
      }
    }
    expect(ready).toBeDefined();
    const url = ready?.url ?? "";
    const secret = ready?.secret ?? "";
    const printed = lines.join("\n");
    // The app's address carries the launch's secret, and so do the curl controls.
    expect(printed).toContain(`Abra la aplicación:   ${url}/#acceso=${secret}`);
    expect(printed).toContain(`curl -X POST -H "authorization: Bearer ${secret}"`);
    expect(printed).toContain("cv /demo/internet/off");
    // No database password on the output: the superuser URLs are in an owner-only file.
    const urls = await readFile(ready?.databaseUrlsFile ?? "", "utf8");
    const cloudPassword = /CLOUD_DB_URL='postgres:\/\/[^:]+:([^@]+)@/.exec(urls)?.[1] ?? "";
    expect(cloudPassword).not.toBe("");
    expect(printed).not.toContain(cloudPassword);
    expect((await stat(ready?.databaseUrlsFile ?? "")).mode & 0o777).toBe(0o600);
    // The demo accounts, to sign in with: they are demo accounts, printed on purpose.
    expect(printed).toMatch(/Recepción: +recepcion@centrovision\.mx +contraseña: recepcion-demo/);
    expect(printed).toMatch(/Médica: +mariana\.robles@centrovision\.mx +contraseña: doctora-demo/);
    const app = { "content-type": "application/json", authorization: `Bearer ${secret}` };
    expect((await fetch(`${url}/invoke/get_connection_status`, { method: "POST", body: "{}" })).status).toBe(
      401,
    );
    const status = await fetch(`${url}/invoke/get_connection_status`, {
      method: "POST",
      headers: app,
      body: "{}",
    });
    expect(status.status).toBe(200);
    const signIn = await fetch(`${url}/invoke/sign_in`, {
      method: "POST",
      headers: app,
      body: JSON.stringify({ email: "recepcion@centrovision.mx", password: "recepcion-demo" }),
    });
    expect(await signIn.json()).toMatchObject({ signedIn: true, method: "online" });
    const html = await (await fetch(url)).text();
    expect(html).toContain('<div id="root">');

    child.kill("SIGINT");
    const [code] = await exited;
    expect(code).toBe(0);
    const ports = [Number(new URL(url).port), Number(new URL(ready?.cloudDbUrl ?? "").port)];
    expect(await Promise.all(ports.map(listening))).toEqual([false, false]);
  }, 120_000);
});
