import { randomUUID } from "node:crypto";
import { rm } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { describe, expect, it } from "vitest";
import { SUPABASE_SUPERUSER, startLocalSupabase, startPostgres } from "../src/index.js";
import { FIXTURE_DIR, FIXTURE_SQL, supabaseClient } from "./fixtures/supabase/harness.js";

const options = { migrationsDir: FIXTURE_DIR, sqlFiles: [FIXTURE_SQL], log: () => {} };

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

describe("startLocalSupabase lifecycle", () => {
  it("keeps data, the JWT secret, the signing key and users across restarts on a data directory", async () => {
    // Directly under tmp: as root the server runs as another user, who cannot enter a 0700 parent.
    const dataDir = join(tmpdir(), `cv-supabase-data-${randomUUID()}`);
    try {
      const first = await startLocalSupabase({ ...options, dataDir });
      await supabaseClient(first.url, first.serviceRoleKey)
        .from("people")
        .insert({ id: 7, username: "kept" });
      const { id } = await first.createUser({ email: "kept@clinic.example", password: "kept password" });
      const minted = await first.mintUserToken(id);
      await first.stop();
      expect(await portOpen(Number(new URL(first.url).port))).toBe(false);

      const second = await startLocalSupabase({ ...options, dataDir });
      expect(second.jwtSecret).toBe(first.jwtSecret);
      expect(second.jwks).toEqual(first.jwks);
      const { data } = await supabaseClient(second.url, first.anonKey).from("people").select("username");
      expect(data).toEqual([{ username: "kept" }]);
      // A token signed with the key before the restart still verifies after it.
      const whoami = await supabaseClient(second.url, second.anonKey, minted).rpc("whoami");
      expect([whoami.error, whoami.data]).toEqual([null, id]);
      const auth = supabaseClient(second.url, second.anonKey).auth;
      const signIn = await auth.signInWithPassword({
        email: "kept@clinic.example",
        password: "kept password",
      });
      expect(signIn.data.user?.id).toBe(id);
      await second.stop();
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it("runs several stacks on one server, each in its own database, dropped on stop", async () => {
    const server = await startPostgres({ superuser: SUPABASE_SUPERUSER });
    try {
      const [a, b] = await Promise.all([
        startLocalSupabase({ ...options, postgres: server }),
        startLocalSupabase({ ...options, postgres: server }),
      ]);
      expect(a.dbUrl).not.toBe(b.dbUrl);
      await supabaseClient(a.url, a.serviceRoleKey).from("people").insert({ id: 1, username: "only in a" });
      expect((await supabaseClient(b.url, b.anonKey).from("people").select()).data).toEqual([]);
      // Both gateways keep connecting as authenticator: starting b did not lock a out.
      const fresh = await Promise.all(
        Array.from({ length: 12 }, () => supabaseClient(a.url, a.anonKey).from("people").select("id")),
      );
      expect(fresh.every((res) => res.error === null)).toBe(true);
      await Promise.all([a.stop(), b.stop()]);
      const sql = postgres(server.url, { max: 1 });
      const left = await sql`select datname from pg_database where datname like 'cv_supabase_%'`;
      await sql.end();
      expect(left).toEqual([]);
    } finally {
      await server.stop();
    }
  });

  it("reloads its schema cache when DDL notifies pgrst", async () => {
    const stack = await startLocalSupabase(options);
    const sql = postgres(stack.dbUrl, { max: 1, onnotice: () => {} });
    try {
      await sql`insert into people (id, username, age) values (1, 'supabot', 30)`;
      // Filter values are cast to the column type the cache holds. A stale int type makes this a
      // 22P02, which is not a cache miss, so only the NOTIFY can make it pass.
      await sql`alter table people alter column age type text using 'thirty'`;
      const client = supabaseClient(stack.url, stack.anonKey);
      const query = () => client.from("people").select("username").eq("age", "thirty");
      const deadline = Date.now() + 5_000;
      let result = await query();
      while (result.error && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        result = await query();
      }
      expect(result.data).toEqual([{ username: "supabot" }]);
    } finally {
      await sql.end();
      await stack.stop();
    }
  });

  it("answers 503 PGRST000 while the database is unreachable", async () => {
    const server = await startPostgres({ superuser: SUPABASE_SUPERUSER });
    const lines: string[] = [];
    const stack = await startLocalSupabase({ ...options, postgres: server, log: (line) => lines.push(line) });
    await server.stop();
    const res = await fetch(`${stack.url}/rest/v1/people`, { headers: { apikey: stack.anonKey } });
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({
      code: "PGRST000",
      message: "Database connection error. Retrying the connection.",
    });
    await stack.stop();
    expect(lines.join("\n")).toMatch(/could not drop database cv_supabase_/);
  });
});
