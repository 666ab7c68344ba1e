import { execFileSync } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { describe, expect, it } from "vitest";
import { startPostgres } from "../src/index.js";

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

function postgresProcessesFor(dataDir: string): string[] {
  const out = execFileSync("ps", ["-eo", "args"], { encoding: "utf8" });
  return out.split("\n").filter((line) => line.includes(dataDir));
}

describe("startPostgres", () => {
  it("starts a real PostgreSQL 18 and stops without leaving a process, port or directory", async () => {
    const server = await startPostgres();
    const sql = postgres(server.url, { max: 1 });
    const [row] = await sql<{ version: string; encoding: string }[]>`
      select current_setting('server_version_num') as version, pg_encoding_to_char(encoding) as encoding
      from pg_database where datname = current_database()`;
    await sql.end();
    expect(Number(row?.version)).toBeGreaterThanOrEqual(180000);
    expect(row?.encoding).toBe("UTF8");
    expect(postgresProcessesFor(server.dataDir).length).toBeGreaterThan(0);

    await server.stop();
    expect(await portOpen(server.port)).toBe(false);
    expect(postgresProcessesFor(server.dataDir)).toEqual([]);
    expect(existsSync(server.dataDir)).toBe(false);
    await server.stop();
  });

  it("keeps a given data directory, so a restart finds the same data", async () => {
    const dataDir = join(tmpdir(), `cv-kept-${process.pid}-${Date.now()}`);
    const server = await startPostgres({ dataDir });
    const url = await server.createDatabase("clinic");
    const sql = postgres(url, { max: 1 });
    await sql`create table t (v text)`;
    await sql`insert into t values ('señal')`;
    await sql.end();
    await server.stop();

    const again = await startPostgres({ dataDir, password: server.password });
    const sql2 = postgres(again.urlFor("clinic"), { max: 1 });
    expect(await sql2`select v from t`).toEqual([{ v: "señal" }]);
    await sql2.end();
    await again.stop();
    expect(existsSync(dataDir)).toBe(true);
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("rejects a hostile database name", async () => {
    const server = await startPostgres();
    try {
      await expect(server.createDatabase('x"; drop database postgres; --')).rejects.toThrow(
        /invalid database name/,
      );
    } finally {
      await server.stop();
    }
  });
});
