import { type ChildProcess, spawn } from "node:child_process";
import { connect } from "node:net";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { PRODUCT_VERSION } from "@centrovision/core";
import { describe, expect, it } from "vitest";
import { FIXTURE_SQL, supabaseClient } from "./fixtures/supabase/harness.js";

const BIN = fileURLToPath(new URL("../bin/cv-local-supabase.mjs", import.meta.url));

interface Ready {
  url: string;
  anonKey: string;
  serviceRoleKey: string;
  jwtSecret: string;
  dbUrl: string;
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

function exitOf(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => child.once("exit", (code) => resolve(code)));
}

function run(args: string[]): { child: ChildProcess; stderr: () => string } {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk));
  return { child, stderr: () => stderr };
}

describe("cv-local-supabase", () => {
  it("prints one JSON line when ready, serves supabase-js, and stops on SIGTERM with exit 0", async () => {
    const { child, stderr } = run(["--sql", FIXTURE_SQL]);
    const exited = exitOf(child);
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    const outputs: string[] = [];
    const ready = await new Promise<Ready>((resolve, reject) => {
      lines.on("line", (line) => {
        outputs.push(line);
        resolve(JSON.parse(line) as Ready);
      });
      exited.then((code) => reject(new Error(`exited with ${code} before ready:\n${stderr()}`)));
    });
    expect(Object.keys(ready)).toEqual([
      "url",
      "anonKey",
      "serviceRoleKey",
      "jwtSecret",
      "dbUrl",
      "postgresUrl",
    ]);

    const client = supabaseClient(ready.url, ready.serviceRoleKey);
    expect((await client.from("people").insert({ id: 1, username: "cli" }).select("username")).data).toEqual([
      { username: "cli" },
    ]);
    expect((await client.from("patients").select("id")).error).toBeNull();

    const gatewayPort = Number(new URL(ready.url).port);
    const databasePort = Number(new URL(ready.dbUrl).port);
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect(outputs).toHaveLength(1);
    expect(await portOpen(gatewayPort)).toBe(false);
    expect(await portOpen(databasePort)).toBe(false);
    expect(stderr()).toContain("ready");
  });

  it("prints the product's version", async () => {
    const child = spawn(process.execPath, [BIN, "--version"], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    child.stdout?.on("data", (chunk: Buffer) => (stdout += chunk));
    expect(await exitOf(child)).toBe(0);
    expect(stdout).toBe(`${PRODUCT_VERSION}\n`);
  });

  it("exits 2 with a message on bad arguments", async () => {
    for (const args of [["--port", "abc"], ["--bogus"], ["--sql", "/no/such/file.sql"]]) {
      const { child, stderr } = run(args);
      expect(await exitOf(child)).toBe(2);
      expect(stderr()).toMatch(/usage: cv-local-supabase/);
    }
  });
});
